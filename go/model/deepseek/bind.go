package deepseek

import (
	"fmt"
	"os"
	"unsafe"

	"github.com/deepgo/deepgo/go/backend"
	"github.com/deepgo/deepgo/go/weights"
)

// vec is a 1-D weight (a norm's scale) in device memory.
type vec struct {
	ptr   uintptr
	dtype backend.DType
}

// binder places checkpoint tensors on the backend: on the CPU the mapped file is used in place,
// elsewhere each tensor is uploaded once. It checks every name, shape and dtype against the
// config, so a broken checkpoint fails here with the tensor's name, never later in a kernel.
type binder struct {
	ck       *weights.Checkpoint
	be       backend.Backend
	cfg      *weights.Config
	allocs   []uintptr
	bytes    int64 // weight bytes placed
	derived  int64 // bytes made at load from the weights (own): tables, transposed copies
	progress func(done int64)
	stage    [2][]byte // pinned staging buffers for uploads (GPU backends)
	pending  [2]bool
	cur      int
}

const stageBytes = 64 << 20

// upload copies data to the device through two pinned staging buffers: the host copy into one
// buffer overlaps the DMA from the other, and the mapped file is read once, sequentially.
func (b *binder) upload(dst uintptr, data []byte) error {
	if b.stage[0] == nil {
		for i := range b.stage {
			buf, err := b.be.HostAlloc(stageBytes)
			if err != nil {
				return b.be.Upload(dst, data) // no pinned memory: plain (synchronous) copies
			}
			b.stage[i] = buf
		}
	}
	for off := 0; off < len(data); {
		if b.pending[b.cur] {
			if err := b.be.Sync(); err != nil {
				return err
			}
			b.pending = [2]bool{}
		}
		n := copy(b.stage[b.cur], data[off:])
		if err := b.be.UploadAsync(dst+uintptr(off), b.stage[b.cur][:n]); err != nil {
			return err
		}
		b.pending[b.cur] = true
		b.cur ^= 1
		off += n
	}
	return nil
}

// finishUploads waits for the last copies and frees the staging buffers.
func (b *binder) finishUploads() error {
	if b.stage[0] == nil {
		return nil
	}
	err := b.be.Sync()
	for i := range b.stage {
		if b.stage[i] != nil {
			_ = b.be.HostFree(b.stage[i])
			b.stage[i] = nil
		}
	}
	b.pending = [2]bool{}
	return err
}

func (b *binder) tensor(name string) (*weights.Tensor, error) {
	t, err := b.ck.Tensor(name)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func shapeErr(t *weights.Tensor, want ...int64) error {
	return fmt.Errorf("tensor %s in %s: shape %v, want %v", t.Name, t.File, t.Shape, want)
}

func sameShape(got []int64, want ...int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}

func toBackendDType(d weights.DType) (backend.DType, bool) {
	switch d {
	case weights.F32:
		return backend.F32, true
	case weights.BF16:
		return backend.BF16, true
	case weights.F16:
		return backend.F16, true
	case weights.F8E4M3:
		return backend.F8E4M3, true
	}
	return 0, false
}

// place returns a device address holding data.
func (b *binder) place(data []byte) (uintptr, error) {
	if len(data) == 0 {
		return 0, nil
	}
	b.bytes += int64(len(data))
	if b.be.HostIsDevice() {
		if b.progress != nil {
			b.progress(b.bytes)
		}
		return uintptr(unsafe.Pointer(&data[0])), nil
	}
	p, err := b.be.Alloc(int64(len(data)))
	if err != nil {
		return 0, err
	}
	b.allocs = append(b.allocs, p)
	if err := b.upload(p, data); err != nil {
		return 0, err
	}
	if b.progress != nil {
		b.progress(b.bytes)
	}
	return p, nil
}

// own copies host data into a fresh device allocation (also on the CPU: for data made at load).
func (b *binder) own(data []byte) (uintptr, error) {
	p, err := b.be.Alloc(int64(len(data)))
	if err != nil {
		return 0, err
	}
	b.allocs = append(b.allocs, p)
	b.derived += int64(len(data))
	return p, b.be.Upload(p, data)
}

// matrix binds a 2-D weight [rows, cols], with its block scales when it is F8_E4M3.
func (b *binder) matrix(name string, rows, cols int) (backend.Weight, error) {
	t, err := b.tensor(name)
	if err != nil {
		return backend.Weight{}, err
	}
	if !sameShape(t.Shape, int64(rows), int64(cols)) {
		return backend.Weight{}, shapeErr(t, int64(rows), int64(cols))
	}
	dt, ok := toBackendDType(t.DType)
	if !ok {
		return backend.Weight{}, fmt.Errorf("tensor %s in %s: unsupported dtype %s for a linear weight", t.Name, t.File, t.DType)
	}
	w := backend.Weight{Rows: int64(rows), Cols: int64(cols), LD: int64(cols), DType: dt}
	if w.Data, err = b.place(t.Data); err != nil {
		return backend.Weight{}, fmt.Errorf("place %s: %w", name, err)
	}
	if dt != backend.F8E4M3 {
		return w, nil
	}
	br, bc := 128, 128
	if q := b.cfg.QuantizationConfig; q != nil && len(q.WeightBlockSize) == 2 {
		br, bc = q.WeightBlockSize[0], q.WeightBlockSize[1]
	}
	st, err := b.tensor(name + "_scale_inv")
	if err != nil {
		return backend.Weight{}, fmt.Errorf("fp8 weight %s needs its block scales: %w", name, err)
	}
	sr, sc := int64((rows+br-1)/br), int64((cols+bc-1)/bc)
	if !sameShape(st.Shape, sr, sc) {
		return backend.Weight{}, shapeErr(st, sr, sc)
	}
	if st.DType != weights.F32 {
		return backend.Weight{}, fmt.Errorf("tensor %s in %s: dtype %s, want F32 block scales", st.Name, st.File, st.DType)
	}
	if w.Scale, err = b.place(st.Data); err != nil {
		return backend.Weight{}, fmt.Errorf("place %s: %w", st.Name, err)
	}
	w.BlockRows, w.BlockCols = int32(br), int32(bc)
	return w, nil
}

// vector binds a 1-D weight of n elements (F32, BF16 or F16).
func (b *binder) vector(name string, n int) (vec, error) {
	t, err := b.tensor(name)
	if err != nil {
		return vec{}, err
	}
	if !sameShape(t.Shape, int64(n)) {
		return vec{}, shapeErr(t, int64(n))
	}
	dt, ok := toBackendDType(t.DType)
	if !ok || dt == backend.F8E4M3 {
		return vec{}, fmt.Errorf("tensor %s in %s: unsupported dtype %s for a norm weight", t.Name, t.File, t.DType)
	}
	p, err := b.place(t.Data)
	if err != nil {
		return vec{}, fmt.Errorf("place %s: %w", name, err)
	}
	return vec{ptr: p, dtype: dt}, nil
}

// f32Vector binds a 1-D weight as float32 (the router's selection bias must stay f32).
func (b *binder) f32Vector(name string, n int) (uintptr, error) {
	t, err := b.tensor(name)
	if err != nil {
		return 0, err
	}
	if !sameShape(t.Shape, int64(n)) {
		return 0, shapeErr(t, int64(n))
	}
	if t.DType == weights.F32 {
		return b.place(t.Data)
	}
	f, err := t.F32()
	if err != nil {
		return 0, fmt.Errorf("tensor %s in %s: %w", t.Name, t.File, err)
	}
	return b.own(unsafe.Slice((*byte)(unsafe.Pointer(&f[0])), 4*len(f)))
}

// weightTable uploads an array of weight descriptors (moe_ffn reads them on the device).
func (b *binder) weightTable(ws []backend.Weight) (uintptr, error) {
	n := int(unsafe.Sizeof(backend.Weight{})) * len(ws)
	return b.own(unsafe.Slice((*byte)(unsafe.Pointer(&ws[0])), n))
}

func (b *binder) free() {
	_ = b.finishUploads()
	for _, p := range b.allocs {
		_ = b.be.Free(p)
	}
	b.allocs = nil
}

// stacked binds 2-D weights [rows[i], cols] of one dtype as ONE device matrix, their rows in
// order, so that a single linear computes all of them (q_a_proj with kv_a_proj_with_mqa, gate_proj
// with up_proj). It returns the whole and each part as a view into it. ok is false, and nothing
// is placed, when the backend computes from the mapped file in place (the CPU), the dtypes differ,
// or fp8 parts do not start on a scale block row; the caller then binds each with matrix.
// DEEPGO_FUSE_WEIGHTS=1 stacks on the CPU too (copies; for tests), =0 never stacks.
func (b *binder) stacked(names []string, rows []int, cols int) (whole backend.Weight, parts []backend.Weight, ok bool, err error) {
	if b.be.HostIsDevice() && os.Getenv("DEEPGO_FUSE_WEIGHTS") != "1" {
		return whole, nil, false, nil
	}
	ts := make([]*weights.Tensor, len(names))
	for i, n := range names {
		if ts[i], err = b.tensor(n); err != nil {
			return whole, nil, false, err
		}
		if !sameShape(ts[i].Shape, int64(rows[i]), int64(cols)) {
			return whole, nil, false, shapeErr(ts[i], int64(rows[i]), int64(cols))
		}
		if ts[i].DType != ts[0].DType {
			return whole, nil, false, nil
		}
	}
	dt, known := toBackendDType(ts[0].DType)
	if !known {
		return whole, nil, false, nil // matrix reports it
	}
	br, bc := 128, 128
	if q := b.cfg.QuantizationConfig; q != nil && len(q.WeightBlockSize) == 2 {
		br, bc = q.WeightBlockSize[0], q.WeightBlockSize[1]
	}
	var scales []*weights.Tensor
	if dt == backend.F8E4M3 {
		if br <= 0 || bc <= 0 {
			return whole, nil, false, nil
		}
		for i, t := range ts {
			if i < len(ts)-1 && rows[i]%br != 0 {
				return whole, nil, false, nil
			}
			st, err := b.tensor(names[i] + "_scale_inv")
			if err != nil {
				return whole, nil, false, fmt.Errorf("fp8 weight %s needs its block scales: %w", t.Name, err)
			}
			sr, sc := int64((rows[i]+br-1)/br), int64((cols+bc-1)/bc)
			if !sameShape(st.Shape, sr, sc) {
				return whole, nil, false, shapeErr(st, sr, sc)
			}
			if st.DType != weights.F32 {
				return whole, nil, false, fmt.Errorf("tensor %s in %s: dtype %s, want F32 block scales", st.Name, st.File, st.DType)
			}
			scales = append(scales, st)
		}
	}
	// put uploads the tensors' bytes back to back into one allocation.
	put := func(src []*weights.Tensor) (uintptr, []uintptr, error) {
		total := int64(0)
		for _, t := range src {
			total += int64(len(t.Data))
		}
		p, err := b.be.Alloc(total)
		if err != nil {
			return 0, nil, err
		}
		b.allocs = append(b.allocs, p)
		at := make([]uintptr, len(src))
		off := uintptr(0)
		for i, t := range src {
			at[i] = p + off
			if err := b.upload(p+off, t.Data); err != nil {
				return 0, nil, fmt.Errorf("place %s: %w", t.Name, err)
			}
			off += uintptr(len(t.Data))
			b.bytes += int64(len(t.Data))
			if b.progress != nil {
				b.progress(b.bytes)
			}
		}
		return p, at, nil
	}
	base, at, err := put(ts)
	if err != nil {
		return whole, nil, false, err
	}
	total := 0
	for _, r := range rows {
		total += r
	}
	whole = backend.Weight{Data: base, Rows: int64(total), Cols: int64(cols), LD: int64(cols), DType: dt}
	parts = make([]backend.Weight, len(ts))
	for i := range ts {
		parts[i] = backend.Weight{Data: at[i], Rows: int64(rows[i]), Cols: int64(cols), LD: int64(cols), DType: dt}
	}
	if dt == backend.F8E4M3 {
		sbase, sat, err := put(scales)
		if err != nil {
			return whole, nil, false, err
		}
		whole.Scale, whole.BlockRows, whole.BlockCols = sbase, int32(br), int32(bc)
		for i := range parts {
			parts[i].Scale, parts[i].BlockRows, parts[i].BlockCols = sat[i], int32(br), int32(bc)
		}
	}
	return whole, parts, true, nil
}
