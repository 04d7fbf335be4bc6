// Package cuda is the CUDA backend of deepgo: libdeepgo_cuda.so (cuda/*.cu, built by CMake with
// nvcc) loaded at run time with purego, so this package builds with CGO_ENABLED=0 and a binary
// that never asks for a GPU never needs the library.
//
// The library is looked for, in order:
//  1. $DEEPGO_LIB_DIR (an explicit choice wins over every guess),
//  2. the directory of the running executable,
//  3. build/cuda and build/ of the repository, found by walking up from the working directory
//     to the first go.mod.
//
// Load reports clearly why the GPU cannot be used: the library was not found (with every place
// tried), the NVIDIA driver (libcuda.so.1) is missing, the driver is too old for the CUDA 13
// runtime linked into the library, or there is no GPU (dg_device_count == 0).
package cuda

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"github.com/ebitengine/purego"
)

// LibName is the file name of the CUDA kernel library.
const LibName = "libdeepgo_cuda.so"

// apiVersion is DG_KERNELS_API_VERSION of the header this package mirrors.
const apiVersion = 1

// ErrNoDevice wraps every "the GPU cannot be used here" condition, so callers (and tests) can
// tell a missing GPU from a failing one with errors.Is.
var ErrNoDevice = errors.New("no CUDA device")

// lib holds the library's functions. Args structs travel as uintptr(unsafe.Pointer(&args)).
type lib struct {
	path   string
	handle uintptr

	apiVersion  func() int32
	backendName func() string
	lastError   func() string
	deviceCount func(count *int32) int32
	init        func(device int32) int32
	memInfo     func(free, total *int64) int32
	deviceName  func(device int32, buf unsafe.Pointer, n int64) int32
	malloc      func(ptr *uintptr, bytes int64) int32
	free        func(ptr uintptr) int32
	hostAlloc   func(ptr *unsafe.Pointer, bytes int64) int32
	hostFree    func(ptr unsafe.Pointer) int32
	memcpy      func(dst, src uintptr, bytes int64, kind int32, stream uintptr) int32
	memcpyH2D   func(dst uintptr, src unsafe.Pointer, bytes int64, kind int32, stream uintptr) int32
	memcpyD2H   func(dst unsafe.Pointer, src uintptr, bytes int64, kind int32, stream uintptr) int32
	memset      func(dst uintptr, value int32, bytes int64, stream uintptr) int32
	streamNew   func(s *uintptr) int32
	streamFree  func(s uintptr) int32
	streamSync  func(s uintptr) int32

	embed            func(a, s uintptr) int32
	rmsnorm          func(a, s uintptr) int32
	linear           func(a, s uintptr) int32
	linearSupported  func(a uintptr) int32
	linearWorkspace  func(a uintptr) int64
	headMatmul       func(a, s uintptr) int32
	rope             func(a, s uintptr) int32
	kvStore          func(a, s uintptr) int32
	kvGather         func(a, s uintptr) int32
	mlaPrep          func(a, s uintptr) int32
	mlaPrefill       func(a, s uintptr) int32
	mlaPrefillWS     func(a uintptr) int64
	mlaDecode        func(a, s uintptr) int32
	mlaDecodeWS      func(a uintptr) int64
	siluMul          func(a, s uintptr) int32
	moeGate          func(a, s uintptr) int32
	moeFFN           func(a, s uintptr) int32
	moeFFNWS         func(a uintptr) int64
	argmax           func(a, s uintptr) int32
	sample           func(a, s uintptr) int32
	sampleWS         func(a uintptr) int64
	convert          func(a, s uintptr) int32
	graphBegin       func(s uintptr) int32
	graphEnd         func(s uintptr, exec *uintptr) int32
	graphLaunch      func(exec, s uintptr) int32
	graphDestroy     func(exec uintptr) int32
	deviceCountValue int32
}

var (
	loadOnce sync.Once
	loaded   *lib
	loadErr  error
)

// Load finds and opens libdeepgo_cuda.so once and checks that a usable GPU is present. The error
// explains why not (and wraps ErrNoDevice when the machine simply has no usable GPU or library).
func Load() error {
	loadOnce.Do(func() { loaded, loadErr = load() })
	return loadErr
}

// LibraryPath is the path of the loaded library ("" before a successful Load).
func LibraryPath() string {
	if loaded == nil {
		return ""
	}
	return loaded.path
}

// DeviceCount is the number of CUDA devices (0 and an error when the library cannot be used).
func DeviceCount() (int, error) {
	if err := Load(); err != nil {
		return 0, err
	}
	return int(loaded.deviceCountValue), nil
}

// candidates lists where the library may be, in search order, without duplicates.
func candidates() []string {
	var dirs []string
	if d := os.Getenv("DEEPGO_LIB_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	if exe, err := os.Executable(); err == nil {
		if r, err := filepath.EvalSymlinks(exe); err == nil {
			exe = r
		}
		dirs = append(dirs, filepath.Dir(exe))
	}
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
				dirs = append(dirs, filepath.Join(d, "build", "cuda"), filepath.Join(d, "build"))
				break
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	seen := map[string]bool{}
	var out []string
	for _, d := range dirs {
		p := filepath.Join(d, LibName)
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	return out
}

func load() (*lib, error) {
	var path string
	tried := candidates()
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			path = p
			break
		}
	}
	if path == "" {
		return nil, fmt.Errorf("%w: %s not found; tried %s (build it with `make cuda` or "+
			"`cmake -S cuda -B build/cuda && cmake --build build/cuda`, or set DEEPGO_LIB_DIR)",
			ErrNoDevice, LibName, strings.Join(tried, ", "))
	}
	// The driver first: a missing libcuda.so.1 is the commonest reason on a GPU-less machine, and
	// the CUDA runtime inside our library would only say "insufficient driver" about it.
	if h, err := purego.Dlopen("libcuda.so.1", purego.RTLD_NOW|purego.RTLD_GLOBAL); err != nil {
		return nil, fmt.Errorf("%w: the NVIDIA driver library libcuda.so.1 cannot be loaded (%v); "+
			"is an NVIDIA driver installed?", ErrNoDevice, err)
	} else {
		_ = h // stays loaded for the runtime inside our library
	}
	h, err := purego.Dlopen(path, purego.RTLD_NOW|purego.RTLD_LOCAL)
	if err != nil {
		return nil, fmt.Errorf("%w: cannot load %s: %v", ErrNoDevice, path, err)
	}
	l := &lib{path: path, handle: h}
	if err := l.bind(); err != nil {
		return nil, fmt.Errorf("cuda: %s: %w", path, err)
	}
	if v := l.apiVersion(); v != apiVersion {
		return nil, fmt.Errorf("cuda: %s has kernel API version %d, this program wants %d (rebuild the library)",
			path, v, apiVersion)
	}
	if name := l.backendName(); name != "cuda" {
		return nil, fmt.Errorf("cuda: %s is the %q backend, not cuda", path, name)
	}
	var n int32
	if st := lockedStatus(l, func() int32 { return l.deviceCount(&n) }); st.err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNoDevice, path, st.err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%w: the driver reports no GPU (dg_device_count = 0; library %s)", ErrNoDevice, path)
	}
	l.deviceCountValue = n
	return l, nil
}

// bind registers every dg_ function; a missing symbol is an error, not a panic.
func (l *lib) bind() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("binding the kernel library: %v", r)
		}
	}()
	reg := func(fptr any, name string) {
		if _, e := purego.Dlsym(l.handle, name); e != nil {
			panic(fmt.Sprintf("symbol %s missing: %v", name, e))
		}
		purego.RegisterLibFunc(fptr, l.handle, name)
	}
	reg(&l.apiVersion, "dg_api_version")
	reg(&l.backendName, "dg_backend_name")
	reg(&l.lastError, "dg_last_error")
	reg(&l.deviceCount, "dg_device_count")
	reg(&l.init, "dg_init")
	reg(&l.memInfo, "dg_mem_info")
	reg(&l.deviceName, "dg_device_name")
	reg(&l.malloc, "dg_malloc")
	reg(&l.free, "dg_free")
	reg(&l.hostAlloc, "dg_host_alloc")
	reg(&l.hostFree, "dg_host_free")
	reg(&l.memcpy, "dg_memcpy")
	reg(&l.memcpyH2D, "dg_memcpy")
	reg(&l.memcpyD2H, "dg_memcpy")
	reg(&l.memset, "dg_memset")
	reg(&l.streamNew, "dg_stream_create")
	reg(&l.streamFree, "dg_stream_destroy")
	reg(&l.streamSync, "dg_stream_sync")
	reg(&l.embed, "dg_embed")
	reg(&l.rmsnorm, "dg_rmsnorm")
	reg(&l.linear, "dg_linear")
	reg(&l.linearSupported, "dg_linear_supported")
	reg(&l.linearWorkspace, "dg_linear_workspace_size")
	reg(&l.headMatmul, "dg_head_matmul")
	reg(&l.rope, "dg_rope")
	reg(&l.kvStore, "dg_kv_store")
	reg(&l.kvGather, "dg_kv_gather")
	reg(&l.mlaPrep, "dg_mla_prep")
	reg(&l.mlaPrefill, "dg_mla_prefill")
	reg(&l.mlaPrefillWS, "dg_mla_prefill_workspace_size")
	reg(&l.mlaDecode, "dg_mla_decode")
	reg(&l.mlaDecodeWS, "dg_mla_decode_workspace_size")
	reg(&l.siluMul, "dg_silu_mul")
	reg(&l.moeGate, "dg_moe_gate")
	reg(&l.moeFFN, "dg_moe_ffn")
	reg(&l.moeFFNWS, "dg_moe_ffn_workspace_size")
	reg(&l.argmax, "dg_argmax")
	reg(&l.sample, "dg_sample")
	reg(&l.sampleWS, "dg_sample_workspace_size")
	reg(&l.convert, "dg_convert")
	reg(&l.graphBegin, "dg_cuda_graph_begin")
	reg(&l.graphEnd, "dg_cuda_graph_end")
	reg(&l.graphLaunch, "dg_cuda_graph_launch")
	reg(&l.graphDestroy, "dg_cuda_graph_destroy")
	return nil
}
