// Package cpu is backend.Backend over the CPU kernel library (cpu/*.c through cgo).
//
// Device memory is host memory (HostIsDevice): Alloc is dg_malloc (64-byte aligned), Upload and
// Download are memcpy, kernels run synchronously on the library's thread pool. Each kernel call
// hands the caller's args pointer straight to C and allocates nothing on success; the goroutine
// is locked to its OS thread around the call so that dg_last_error (thread-local) is read on the
// thread that failed.
package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"unsafe"

	kern "github.com/deepgo/deepgo/cpu"
	"github.com/deepgo/deepgo/go/backend"
)

// Backend is the CPU implementation of backend.Backend.
type Backend struct {
	device string
	mu     sync.Mutex
	host   map[uintptr]struct{}
}

var _ backend.Backend = (*Backend)(nil)

// New initialises the CPU library with the given number of worker threads (0 = one per online CPU).
func New(threads int) (*Backend, error) {
	if threads < 0 {
		return nil, fmt.Errorf("cpu backend: threads = %d", threads)
	}
	if err := run("init", kern.Init); err != nil {
		return nil, err
	}
	if err := run("set_threads", func() int32 { return kern.SetThreads(int32(threads)) }); err != nil {
		return nil, err
	}
	return &Backend{device: kern.DeviceName(), host: map[uintptr]struct{}{}}, nil
}

// withThread runs f locked to the OS thread and fetches the thread's error message on failure.
func withThread(f func() int32) (int32, string) {
	runtime.LockOSThread()
	st := f()
	msg := ""
	if st != backend.StatusOK {
		msg = kern.LastError()
	}
	runtime.UnlockOSThread()
	return st, msg
}

func check(op string, st int32, msg string) error {
	if st == backend.StatusOK {
		return nil
	}
	return backend.Check("cpu", op, st, func() string { return msg })
}

// run calls f on a locked thread and turns its status into an error.
func run(op string, f func() int32) error {
	st, msg := withThread(f)
	return check(op, st, msg)
}

// call runs one kernel: no allocation unless it fails.
func call(op string, f func(unsafe.Pointer) int32, p unsafe.Pointer) error {
	runtime.LockOSThread()
	st := f(p)
	if st == backend.StatusOK {
		runtime.UnlockOSThread()
		return nil
	}
	msg := kern.LastError()
	runtime.UnlockOSThread()
	return backend.Check("cpu", op, st, func() string { return msg })
}

func (b *Backend) Name() string       { return "cpu" }
func (b *Backend) Device() string     { return b.device }
func (b *Backend) HostIsDevice() bool { return true }

// SetThreads changes the size of the library's thread pool (0 = online CPUs).
func (b *Backend) SetThreads(n int) error {
	return run("set_threads", func() int32 { return kern.SetThreads(int32(n)) })
}

func (b *Backend) Alloc(bytes int64) (uintptr, error) {
	var p unsafe.Pointer
	st, msg := withThread(func() int32 {
		var s int32
		p, s = kern.Malloc(bytes)
		return s
	})
	if err := check("alloc", st, msg); err != nil {
		return 0, err
	}
	return uintptr(p), nil
}

func (b *Backend) Free(ptr uintptr) error {
	return run("free", func() int32 { return kern.Free(ptr) })
}

func (b *Backend) HostAlloc(bytes int64) ([]byte, error) {
	if bytes <= 0 {
		return nil, fmt.Errorf("cpu host_alloc: %d bytes", bytes)
	}
	p, st := kern.Malloc(bytes)
	if st != backend.StatusOK {
		return nil, check("host_alloc", st, "out of memory")
	}
	b.mu.Lock()
	b.host[uintptr(p)] = struct{}{}
	b.mu.Unlock()
	return unsafe.Slice((*byte)(p), bytes), nil
}

func (b *Backend) HostFree(buf []byte) error {
	if len(buf) == 0 {
		return nil
	}
	p := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	b.mu.Lock()
	_, ok := b.host[p]
	delete(b.host, p)
	b.mu.Unlock()
	if !ok {
		return fmt.Errorf("cpu host_free: not from HostAlloc")
	}
	return run("host_free", func() int32 { return kern.Free(p) })
}

func (b *Backend) MemInfo() (free, total int64, err error) {
	f, t, st := kern.MemInfo()
	return f, t, check("mem_info", st, "")
}

func (b *Backend) Upload(dst uintptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	return run("upload", func() int32 {
		return kern.CopyToAddr(dst, unsafe.Pointer(unsafe.SliceData(src)), int64(len(src)))
	})
}

func (b *Backend) UploadAsync(dst uintptr, src []byte) error { return b.Upload(dst, src) }

func (b *Backend) Download(dst []byte, src uintptr) error {
	if len(dst) == 0 {
		return nil
	}
	return run("download", func() int32 {
		return kern.CopyFromAddr(unsafe.Pointer(unsafe.SliceData(dst)), src, int64(len(dst)))
	})
}

func (b *Backend) CopyDevice(dst, src uintptr, bytes int64) error {
	return run("copy", func() int32 { return kern.CopyAddr(dst, src, bytes) })
}

func (b *Backend) Memset(dst uintptr, value byte, bytes int64) error {
	return run("memset", func() int32 { return kern.Memset(dst, int32(value), bytes) })
}

func (b *Backend) Sync() error  { return nil }
func (b *Backend) Close() error { return nil }

func (b *Backend) Embed(a *backend.EmbedArgs) error {
	return call("embed", kern.Embed, unsafe.Pointer(a))
}

func (b *Backend) RMSNorm(a *backend.RMSNormArgs) error {
	return call("rmsnorm", kern.RMSNorm, unsafe.Pointer(a))
}

func (b *Backend) Linear(a *backend.LinearArgs) error {
	return call("linear", kern.Linear, unsafe.Pointer(a))
}

func (b *Backend) HeadMatmul(a *backend.HeadMatmulArgs) error {
	return call("head_matmul", kern.HeadMatmul, unsafe.Pointer(a))
}

func (b *Backend) Rope(a *backend.RopeArgs) error {
	return call("rope", kern.Rope, unsafe.Pointer(a))
}

func (b *Backend) KVStore(a *backend.KVStoreArgs) error {
	return call("kv_store", kern.KVStore, unsafe.Pointer(a))
}

func (b *Backend) KVGather(a *backend.KVGatherArgs) error {
	return call("kv_gather", kern.KVGather, unsafe.Pointer(a))
}

func (b *Backend) MLAPrep(a *backend.MLAPrepArgs) error {
	return call("mla_prep", kern.MLAPrep, unsafe.Pointer(a))
}

func (b *Backend) MLAPrefill(a *backend.MLAPrefillArgs) error {
	return call("mla_prefill", kern.MLAPrefill, unsafe.Pointer(a))
}

func (b *Backend) MLADecode(a *backend.MLADecodeArgs) error {
	return call("mla_decode", kern.MLADecode, unsafe.Pointer(a))
}

func (b *Backend) SiluMul(a *backend.SiluMulArgs) error {
	return call("silu_mul", kern.SiluMul, unsafe.Pointer(a))
}

func (b *Backend) MoEGate(a *backend.MoEGateArgs) error {
	return call("moe_gate", kern.MoEGate, unsafe.Pointer(a))
}

func (b *Backend) MoEFFN(a *backend.MoEFFNArgs) error {
	return call("moe_ffn", kern.MoEFFN, unsafe.Pointer(a))
}

func (b *Backend) Argmax(a *backend.ArgmaxArgs) error {
	return call("argmax", kern.Argmax, unsafe.Pointer(a))
}

func (b *Backend) Sample(a *backend.SampleArgs) error {
	return call("sample", kern.Sample, unsafe.Pointer(a))
}

func (b *Backend) Convert(a *backend.ConvertArgs) error {
	return call("convert", kern.Convert, unsafe.Pointer(a))
}

func (b *Backend) LinearWorkspaceSize(a *backend.LinearArgs) int64 {
	return kern.LinearWorkspaceSize(unsafe.Pointer(a))
}

func (b *Backend) MLAPrefillWorkspaceSize(a *backend.MLAPrefillArgs) int64 {
	return kern.MLAPrefillWorkspaceSize(unsafe.Pointer(a))
}

func (b *Backend) MLADecodeWorkspaceSize(a *backend.MLADecodeArgs) int64 {
	return kern.MLADecodeWorkspaceSize(unsafe.Pointer(a))
}

func (b *Backend) MoEFFNWorkspaceSize(a *backend.MoEFFNArgs) int64 {
	return kern.MoEFFNWorkspaceSize(unsafe.Pointer(a))
}

func (b *Backend) SampleWorkspaceSize(a *backend.SampleArgs) int64 {
	return kern.SampleWorkspaceSize(unsafe.Pointer(a))
}

func (b *Backend) LinearSupported(a *backend.LinearArgs) bool {
	return kern.LinearSupported(unsafe.Pointer(a))
}
