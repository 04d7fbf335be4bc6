// Package backend is the Go face of the kernel contract (include/deepgo_kernels.h): the argument
// structs, mirrored field for field so that a pointer to one can be handed to the C library
// through cgo (CPU) or purego (CUDA), and the Backend interface the model is written against.
//
// Every struct here must keep the exact layout of its C twin: pointers (as uintptr) and int64s
// first, then 32-bit fields, padded to 8 bytes. go/backend/cpu checks the sizes against the C
// compiler's in its tests.
package backend

// DType is an element type; the numbers are the C enum dg_dtype.
type DType int32

const (
	F32    DType = 0
	BF16   DType = 1
	F16    DType = 2
	F8E4M3 DType = 3
	I32    DType = 4
)

// Size is the element size in bytes.
func (d DType) Size() int64 {
	switch d {
	case F32, I32:
		return 4
	case BF16, F16:
		return 2
	case F8E4M3:
		return 1
	}
	return 0
}

func (d DType) String() string {
	switch d {
	case F32:
		return "f32"
	case BF16:
		return "bf16"
	case F16:
		return "f16"
	case F8E4M3:
		return "f8e4m3"
	case I32:
		return "i32"
	}
	return "dtype?"
}

// Status codes of the C library.
const (
	StatusOK          = 0
	StatusInvalid     = 1
	StatusUnsupported = 2
	StatusDevice      = 3
	StatusNoMem       = 4
)

// Copy directions for Memcpy.
const (
	CopyH2D = 0
	CopyD2H = 1
	CopyD2D = 2
)

// Linear modes.
const (
	LinearDefault = 0
	LinearW8A8    = 1
)

// Router scoring functions and top-k methods.
const (
	ScoreSigmoid = 0
	ScoreSoftmax = 1

	TopkNoauxTC            = 0
	TopkGreedy             = 1
	TopkGroupLimitedGreedy = 2
)

// Weight is dg_weight: a matrix [Rows, Cols] in device memory.
type Weight struct {
	Data      uintptr
	Scale     uintptr
	Rows      int64
	Cols      int64
	LD        int64
	DType     DType
	BlockRows int32
	BlockCols int32
	_         int32
}

type EmbedArgs struct {
	IDs      uintptr
	Out      uintptr
	Table    Weight
	N        int64
	LDOut    int64
	OutDType DType
	_        int32
}

type RMSNormArgs struct {
	X          uintptr
	Residual   uintptr
	Weight     uintptr
	Out        uintptr
	N          int64
	Dim        int64
	LDX        int64
	LDResidual int64
	LDOut      int64
	Eps        float32
	XDType     DType
	WDType     DType
	OutDType   DType
}

type LinearArgs struct {
	X          uintptr
	Y          uintptr
	Workspace  uintptr
	W          Weight
	M          int64
	LDX        int64
	LDY        int64
	XDType     DType
	YDType     DType
	Accumulate int32
	Mode       int32
}

type HeadMatmulArgs struct {
	X          uintptr
	Y          uintptr
	W          Weight
	NTok       int64
	NHeads     int64
	InDim      int64
	OutDim     int64
	Row0       int64
	HeadStride int64
	LDXTok     int64
	LDXHead    int64
	LDYTok     int64
	LDYHead    int64
	Trans      int32
	XDType     DType
	YDType     DType
	_          int32
}

type RopeArgs struct {
	X       uintptr
	Pos     uintptr
	InvFreq uintptr
	NTok    int64
	NHeads  int64
	LDTok   int64
	LDHead  int64
	Offset  int64
	MScale  float32
	RopeDim int32
	DType   DType
	_       int32
}

type KVStoreArgs struct {
	Src        uintptr
	Slots      uintptr
	Cache      uintptr
	N          int64
	LDSrc      int64
	Width      int64
	SrcDType   DType
	CacheDType DType
}

type KVGatherArgs struct {
	Cache      uintptr
	BlockTable uintptr
	Dst        uintptr
	N          int64
	Width      int64
	LDDst      int64
	BlockSize  int32
	CacheDType DType
	DstDType   DType
	_          int32
}

type MLAPrepArgs struct {
	Q          uintptr
	KV         uintptr
	QWeight    uintptr
	KVWeight   uintptr
	Pos        uintptr
	InvFreq    uintptr
	Slots      uintptr
	Cache      uintptr
	N          int64
	QDim       int64
	Latent     int64
	LDQ        int64
	LDKV       int64
	Eps        float32
	MScale     float32
	RopeDim    int32
	DType      DType
	QWDType    DType
	KVWDType   DType
	CacheDType DType
	_          int32
}

type MLAPrefillArgs struct {
	Q         uintptr
	KV        uintptr
	KPE       uintptr
	Out       uintptr
	CuQ       uintptr
	CuK       uintptr
	Workspace uintptr
	NSeqs     int64
	NHeads    int64
	MaxQ      int64
	MaxK      int64
	LDQTok    int64
	LDQHead   int64
	LDKVTok   int64
	LDKVHead  int64
	LDKPE     int64
	LDOutTok  int64
	LDOutHead int64
	Scale     float32
	Nope      int32
	Rope      int32
	V         int32
	DType     DType
	_         int32
}

type MLADecodeArgs struct {
	QLat       uintptr
	QPE        uintptr
	Cache      uintptr
	BlockTable uintptr
	SeqLens    uintptr
	Out        uintptr
	Workspace  uintptr
	Batch      int64
	NHeads     int64
	MaxBlocks  int64
	MaxSeqLen  int64
	LDQTok     int64
	LDQHead    int64
	LDQPETok   int64
	LDQPEHead  int64
	LDOutTok   int64
	LDOutHead  int64
	Scale      float32
	Latent     int32
	Rope       int32
	BlockSize  int32
	QPerSeq    int32
	DType      DType
	CacheDType DType
	_          int32
}

type SiluMulArgs struct {
	Gate   uintptr
	Up     uintptr
	Out    uintptr
	N      int64
	Dim    int64
	LDGate int64
	LDUp   int64
	LDOut  int64
	DType  DType
	_      int32
}

type MoEGateArgs struct {
	Logits       uintptr
	Bias         uintptr
	IDs          uintptr
	Weights      uintptr
	N            int64
	LDLogits     int64
	Scaling      float32
	NExperts     int32
	TopK         int32
	NGroup       int32
	TopkGroup    int32
	Scoring      int32
	Method       int32
	NormTopkProb int32
	NShared      int32 // fixed entries n_experts+j, weight 1, after the top_k per row
}

type MoEFFNArgs struct {
	X          uintptr
	IDs        uintptr
	Weights    uintptr
	Gate       uintptr
	Up         uintptr
	Down       uintptr
	Y          uintptr
	Workspace  uintptr
	N          int64
	Hidden     int64
	Inter      int64
	LDX        int64
	LDY        int64
	NExperts   int32
	TopK       int32
	XDType     DType
	YDType     DType
	Accumulate int32
	Mode       int32
}

type ArgmaxArgs struct {
	Logits uintptr
	Out    uintptr
	N      int64
	Vocab  int64
	LD     int64
}

type SampleArgs struct {
	Logits      uintptr
	Temperature uintptr
	TopK        uintptr
	TopP        uintptr
	MinP        uintptr
	Uniform     uintptr
	Out         uintptr
	Workspace   uintptr
	N           int64
	Vocab       int64
	LD          int64
}

type ConvertArgs struct {
	Src      uintptr
	Dst      uintptr
	N        int64
	SrcDType DType
	DstDType DType
}
