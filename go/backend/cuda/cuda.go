package cuda

import (
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
)

// Backend is one CUDA device with one stream: every kernel and copy is queued on that stream in
// call order; Sync, Download and the allocation calls wait.
type Backend struct {
	lib    *lib
	device int
	stream uintptr
	desc   string
}

var _ backend.Backend = (*Backend)(nil)

// status is a library status plus the thread's message, fetched on the same OS thread.
type status struct {
	code int32
	err  error
}

// lockedStatus runs f (one dg_ call) and, on failure, reads dg_last_error on the same OS thread
// (the message is thread-local in the library).
func lockedStatus(l *lib, f func() int32) status {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := f()
	if st == backend.StatusOK {
		return status{}
	}
	return status{code: st, err: backend.Check("cuda", "", st, l.lastError)}
}

func (b *Backend) check(op string, f func() int32) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return backend.Check("cuda", op, f(), b.lib.lastError)
}

// kernel calls fn(&args, stream) with the args kept alive across the call.
func kernel[T any](b *Backend, op string, fn func(a, s uintptr) int32, a *T) error {
	runtime.LockOSThread()
	st := fn(uintptr(unsafe.Pointer(a)), b.stream)
	var err error
	if st != backend.StatusOK {
		err = backend.Check("cuda", op, st, b.lib.lastError)
	}
	runtime.UnlockOSThread()
	runtime.KeepAlive(a)
	return err
}

func query[T any, R any](fn func(a uintptr) R, a *T) R {
	r := fn(uintptr(unsafe.Pointer(a)))
	runtime.KeepAlive(a)
	return r
}

// New opens CUDA device `device` (0-based) with its own stream.
func New(device int) (*Backend, error) {
	if err := Load(); err != nil {
		return nil, err
	}
	l := loaded
	if device < 0 || device >= int(l.deviceCountValue) {
		return nil, fmt.Errorf("cuda: device %d out of range: %d device(s)", device, l.deviceCountValue)
	}
	b := &Backend{lib: l, device: device}
	// dg_init selects the device for the calling OS thread; CUDA's runtime makes the primary context
	// current on whatever thread calls next only when cudaSetDevice ran there, so every call of this
	// backend that needs the device goes through the library, which works on the current device.
	// With one device (the usual case) this is always device 0.
	if err := b.check("init", func() int32 { return l.init(int32(device)) }); err != nil {
		return nil, err
	}
	if err := b.check("stream_create", func() int32 { return l.streamNew(&b.stream) }); err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	if err := b.check("device_name", func() int32 { return l.deviceName(int32(device), unsafe.Pointer(&buf[0]), int64(len(buf))) }); err == nil {
		for i, c := range buf {
			if c == 0 {
				buf = buf[:i]
				break
			}
		}
		b.desc = string(buf)
	}
	return b, nil
}

func (b *Backend) Name() string       { return "cuda" }
func (b *Backend) Device() string     { return b.desc }
func (b *Backend) HostIsDevice() bool { return false }

// Stream is the cudaStream_t of this backend (for graph capture and interop).
func (b *Backend) Stream() uintptr { return b.stream }

// DeviceIndex is the CUDA device number this backend was opened on.
func (b *Backend) DeviceIndex() int { return b.device }

func (b *Backend) Alloc(bytes int64) (uintptr, error) {
	var p uintptr
	err := b.check("malloc", func() int32 { return b.lib.malloc(&p, bytes) })
	if err != nil {
		// The library's message holds the size asked and the free memory; add them if it does not.
		if e, ok := err.(*backend.Error); ok && e.Status == backend.StatusNoMem && !strings.Contains(e.Msg, "free") {
			free, total, _ := b.MemInfo()
			e.Msg = fmt.Sprintf("%s [asked %d bytes, %d of %d free]", e.Msg, bytes, free, total)
		}
		return 0, err
	}
	return p, nil
}

func (b *Backend) Free(ptr uintptr) error {
	return b.check("free", func() int32 { return b.lib.free(ptr) })
}

func (b *Backend) HostAlloc(bytes int64) ([]byte, error) {
	if bytes == 0 {
		return []byte{}, nil
	}
	var p unsafe.Pointer
	if err := b.check("host_alloc", func() int32 { return b.lib.hostAlloc(&p, bytes) }); err != nil {
		return nil, err
	}
	return unsafe.Slice((*byte)(p), int(bytes)), nil
}

func (b *Backend) HostFree(buf []byte) error {
	if cap(buf) == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(buf[:1]))
	return b.check("host_free", func() int32 { return b.lib.hostFree(p) })
}

func (b *Backend) MemInfo() (free, total int64, err error) {
	err = b.check("mem_info", func() int32 { return b.lib.memInfo(&free, &total) })
	return
}

// Upload copies src into device memory. src may be ordinary Go memory: the CUDA runtime stages a
// pageable source before the call returns, so src may be reused at once.
func (b *Backend) Upload(dst uintptr, src []byte) error {
	if len(src) == 0 {
		return nil
	}
	err := b.check("upload", func() int32 {
		return b.lib.memcpyH2D(dst, unsafe.Pointer(&src[0]), int64(len(src)), backend.CopyH2D, b.stream)
	})
	runtime.KeepAlive(src)
	return err
}

// UploadAsync queues a copy from pinned memory (HostAlloc) and returns at once; src must not be
// changed or freed before the next Sync.
func (b *Backend) UploadAsync(dst uintptr, src []byte) error {
	return b.Upload(dst, src)
}

// Download copies device memory into dst and waits for it (and everything queued before it).
func (b *Backend) Download(dst []byte, src uintptr) error {
	if len(dst) == 0 {
		return b.Sync()
	}
	err := b.check("download", func() int32 {
		return b.lib.memcpyD2H(unsafe.Pointer(&dst[0]), src, int64(len(dst)), backend.CopyD2H, b.stream)
	})
	if err == nil {
		err = b.Sync()
	}
	runtime.KeepAlive(dst)
	return err
}

func (b *Backend) CopyDevice(dst, src uintptr, bytes int64) error {
	return b.check("copy", func() int32 { return b.lib.memcpy(dst, src, bytes, backend.CopyD2D, b.stream) })
}

func (b *Backend) Memset(dst uintptr, value byte, bytes int64) error {
	return b.check("memset", func() int32 { return b.lib.memset(dst, int32(value), bytes, b.stream) })
}

func (b *Backend) Sync() error {
	return b.check("sync", func() int32 { return b.lib.streamSync(b.stream) })
}

func (b *Backend) Close() error {
	if b.stream == 0 {
		return nil
	}
	err := b.Sync()
	if e := b.check("stream_destroy", func() int32 { return b.lib.streamFree(b.stream) }); err == nil {
		err = e
	}
	b.stream = 0
	return err
}

// ---- kernels ----

func (b *Backend) Embed(a *backend.EmbedArgs) error { return kernel(b, "embed", b.lib.embed, a) }
func (b *Backend) RMSNorm(a *backend.RMSNormArgs) error {
	return kernel(b, "rmsnorm", b.lib.rmsnorm, a)
}
func (b *Backend) Linear(a *backend.LinearArgs) error { return kernel(b, "linear", b.lib.linear, a) }
func (b *Backend) LinearSupported(a *backend.LinearArgs) bool {
	return query(b.lib.linearSupported, a) != 0
}
func (b *Backend) LinearWorkspaceSize(a *backend.LinearArgs) int64 {
	return query(b.lib.linearWorkspace, a)
}
func (b *Backend) HeadMatmul(a *backend.HeadMatmulArgs) error {
	return kernel(b, "head_matmul", b.lib.headMatmul, a)
}
func (b *Backend) Rope(a *backend.RopeArgs) error { return kernel(b, "rope", b.lib.rope, a) }
func (b *Backend) KVStore(a *backend.KVStoreArgs) error {
	return kernel(b, "kv_store", b.lib.kvStore, a)
}
func (b *Backend) KVGather(a *backend.KVGatherArgs) error {
	return kernel(b, "kv_gather", b.lib.kvGather, a)
}
func (b *Backend) MLAPrep(a *backend.MLAPrepArgs) error {
	return kernel(b, "mla_prep", b.lib.mlaPrep, a)
}
func (b *Backend) MLAPrefill(a *backend.MLAPrefillArgs) error {
	return kernel(b, "mla_prefill", b.lib.mlaPrefill, a)
}
func (b *Backend) MLAPrefillWorkspaceSize(a *backend.MLAPrefillArgs) int64 {
	return query(b.lib.mlaPrefillWS, a)
}
func (b *Backend) MLADecode(a *backend.MLADecodeArgs) error {
	return kernel(b, "mla_decode", b.lib.mlaDecode, a)
}
func (b *Backend) MLADecodeWorkspaceSize(a *backend.MLADecodeArgs) int64 {
	return query(b.lib.mlaDecodeWS, a)
}
func (b *Backend) SiluMul(a *backend.SiluMulArgs) error {
	return kernel(b, "silu_mul", b.lib.siluMul, a)
}
func (b *Backend) MoEGate(a *backend.MoEGateArgs) error {
	return kernel(b, "moe_gate", b.lib.moeGate, a)
}
func (b *Backend) MoEFFN(a *backend.MoEFFNArgs) error { return kernel(b, "moe_ffn", b.lib.moeFFN, a) }
func (b *Backend) MoEFFNWorkspaceSize(a *backend.MoEFFNArgs) int64 {
	return query(b.lib.moeFFNWS, a)
}
func (b *Backend) Argmax(a *backend.ArgmaxArgs) error { return kernel(b, "argmax", b.lib.argmax, a) }
func (b *Backend) Sample(a *backend.SampleArgs) error { return kernel(b, "sample", b.lib.sample, a) }
func (b *Backend) SampleWorkspaceSize(a *backend.SampleArgs) int64 {
	return query(b.lib.sampleWS, a)
}
func (b *Backend) Convert(a *backend.ConvertArgs) error {
	return kernel(b, "convert", b.lib.convert, a)
}
