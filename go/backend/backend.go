package backend

import (
	"fmt"
)

// Backend is one native kernel library (CPU, CUDA or Metal) seen from Go. The model is written
// against this interface only; it never knows which library runs.
//
// All pointers are device addresses from Alloc (host addresses on the CPU). Kernels are
// asynchronous on GPU backends: they are queued on the backend's stream, and only Sync,
// Download and the memory calls wait.
type Backend interface {
	// Name is "cpu", "cuda" or "metal"; Device describes the device (e.g. "NVIDIA H100 80GB HBM3, sm_90").
	Name() string
	Device() string
	// HostIsDevice reports whether device memory is host memory (the CPU backend): the model then
	// computes from memory-mapped weights in place instead of uploading them.
	HostIsDevice() bool

	Alloc(bytes int64) (uintptr, error)
	Free(ptr uintptr) error
	// HostAlloc returns pinned host memory (for upload staging) as a slice; HostFree releases it.
	HostAlloc(bytes int64) ([]byte, error)
	HostFree(b []byte) error
	MemInfo() (free, total int64, err error)
	// Upload copies host bytes to device memory; Download copies device memory into dst. Both
	// are ordered with the kernels on the stream; Download waits for completion.
	Upload(dst uintptr, src []byte) error
	UploadAsync(dst uintptr, src []byte) error
	Download(dst []byte, src uintptr) error
	CopyDevice(dst, src uintptr, bytes int64) error
	Memset(dst uintptr, value byte, bytes int64) error
	Sync() error
	Close() error

	Kernels
}

// Kernels is the kernel contract, one method per dg_<op>.
type Kernels interface {
	Embed(a *EmbedArgs) error
	RMSNorm(a *RMSNormArgs) error
	Linear(a *LinearArgs) error
	LinearSupported(a *LinearArgs) bool
	LinearWorkspaceSize(a *LinearArgs) int64
	HeadMatmul(a *HeadMatmulArgs) error
	Rope(a *RopeArgs) error
	KVStore(a *KVStoreArgs) error
	KVGather(a *KVGatherArgs) error
	MLAPrep(a *MLAPrepArgs) error
	MLAPrefill(a *MLAPrefillArgs) error
	MLAPrefillWorkspaceSize(a *MLAPrefillArgs) int64
	MLADecode(a *MLADecodeArgs) error
	MLADecodeWorkspaceSize(a *MLADecodeArgs) int64
	SiluMul(a *SiluMulArgs) error
	MoEGate(a *MoEGateArgs) error
	MoEFFN(a *MoEFFNArgs) error
	MoEFFNWorkspaceSize(a *MoEFFNArgs) int64
	Argmax(a *ArgmaxArgs) error
	Sample(a *SampleArgs) error
	SampleWorkspaceSize(a *SampleArgs) int64
	Convert(a *ConvertArgs) error
}

// Error is a failed call into a native library.
type Error struct {
	Backend string
	Op      string
	Status  int32
	Msg     string
}

func (e *Error) Error() string {
	kind := "error"
	switch e.Status {
	case StatusInvalid:
		kind = "invalid argument"
	case StatusUnsupported:
		kind = "unsupported"
	case StatusDevice:
		kind = "device error"
	case StatusNoMem:
		kind = "out of memory"
	}
	if e.Msg == "" {
		return fmt.Sprintf("%s %s: %s", e.Backend, e.Op, kind)
	}
	return fmt.Sprintf("%s %s: %s: %s", e.Backend, e.Op, kind, e.Msg)
}

// Check turns a status into an error (nil for StatusOK); msg is fetched only on failure.
func Check(backend, op string, status int32, msg func() string) error {
	if status == StatusOK {
		return nil
	}
	return &Error{Backend: backend, Op: op, Status: status, Msg: msg()}
}
