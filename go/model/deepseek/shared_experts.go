package deepseek

import (
	"os"

	"github.com/deepgo/deepgo/go/backend"
)

// sharedFusedMaxRows: steps of at most this many rows run the shared experts inside the routed
// experts' launches (batch-1 decode, where a step is a chain of short kernels: H100 peer-7b fp8
// 646 -> 660 tok/s). Longer steps keep the dense GEMVs and GEMMs: at 32 rows the MoE's sorted
// path reads a shared expert once per 8 tokens where the dense GEMV reads it once (H100 peer-7b
// bf16 b32 5,196 -> 4,375 tok/s with 32 here).
const sharedFusedMaxRows = 8

// DeepSeek's shared experts are one SwiGLU MLP of n_shared * moe_intermediate_size; split along
// that intermediate dimension it is n_shared experts of moe_intermediate_size each (the SiLU-mul
// is per element and down sums over the intermediate), so moe_ffn can run them as experts
// n_experts .. n_experts + n_shared - 1 with routing weight 1, which moe_gate appends to every
// token's choice (n_shared). The pieces are views of the bound shared weights: gate/up by rows,
// down by columns. An fp8 down piece needs its own scale array (the kernels derive the scale
// row stride from cols), copied from the checkpoint's. DEEPGO_MOE_SHARED=apart keeps the
// separate launches.

// bindSharedTables sets ly's routed-plus-shared tables and ly.nShared, or leaves nShared 0 when
// the pieces cannot be views (fp8 pieces that do not start on a scale block).
func (m *Model) bindSharedTables(ly *layer, prefix string, gates, ups, downs []backend.Weight) error {
	if os.Getenv("DEEPGO_MOE_SHARED") == "apart" {
		return nil
	}
	S, I := m.Cfg.NSharedExperts, int64(m.Cfg.MoeIntermediateSize)
	pg, pu, pd, ok, err := m.sharedPieces(prefix, ly.shared, S, I)
	if err != nil || !ok {
		return err
	}
	join := func(a, b []backend.Weight) []backend.Weight { return append(append([]backend.Weight{}, a...), b...) }
	if ly.expGateS, err = m.bind.weightTable(join(gates, pg)); err != nil {
		return err
	}
	if ly.expUpS, err = m.bind.weightTable(join(ups, pu)); err != nil {
		return err
	}
	if ly.expDownS, err = m.bind.weightTable(join(downs, pd)); err != nil {
		return err
	}
	ly.nShared = S
	return nil
}

// sharedPieces cuts the shared MLP into S experts of I: gate and up rows j*I.., down columns j*I...
func (m *Model) sharedPieces(prefix string, sh mlpWeights, S int, I int64) (g, u, d []backend.Weight, ok bool, err error) {
	fp8 := sh.down.DType == backend.F8E4M3
	if fp8 {
		br, bc := int64(sh.down.BlockRows), int64(sh.down.BlockCols)
		if br <= 0 || bc <= 0 || I%br != 0 || I%bc != 0 || sh.gate.DType != backend.F8E4M3 || sh.up.DType != backend.F8E4M3 {
			return nil, nil, nil, false, nil
		}
	}
	for j := int64(0); j < int64(S); j++ {
		g = append(g, rowPiece(sh.gate, j*I, I))
		u = append(u, rowPiece(sh.up, j*I, I))
		p := sh.down
		p.Cols = I
		p.Data += uintptr(j * I * p.DType.Size())
		if fp8 && S > 1 {
			if p.Scale, err = m.downPieceScale(prefix, sh.down, j*I, I); err != nil {
				return nil, nil, nil, false, err
			}
		}
		d = append(d, p)
	}
	return g, u, d, true, nil
}

// rowPiece is rows r0 .. r0+n of w (fp8: r0 on a scale block row).
func rowPiece(w backend.Weight, r0, n int64) backend.Weight {
	p := w
	p.Rows = n
	p.Data += uintptr(r0 * w.LD * w.DType.Size())
	if w.DType == backend.F8E4M3 {
		bc := int64(w.BlockCols)
		p.Scale += uintptr(r0 / int64(w.BlockRows) * ((w.Cols + bc - 1) / bc) * 4)
	}
	return p
}

// downPieceScale uploads the block scales of columns c0 .. c0+n of the fp8 down projection as an
// array of their own ([ceil(rows/br), n/bc]).
func (m *Model) downPieceScale(prefix string, w backend.Weight, c0, n int64) (uintptr, error) {
	st, err := m.bind.tensor(prefix + "down_proj.weight_scale_inv")
	if err != nil {
		return 0, err
	}
	br, bc := int64(w.BlockRows), int64(w.BlockCols)
	sr, full := (w.Rows+br-1)/br, (w.Cols+bc-1)/bc
	k0, kn := c0/bc, n/bc
	if int64(len(st.Data)) < sr*full*4 {
		return 0, shapeErr(st, sr, full)
	}
	buf := make([]byte, 0, sr*kn*4)
	for r := int64(0); r < sr; r++ {
		buf = append(buf, st.Data[(r*full+k0)*4:(r*full+k0+kn)*4]...)
	}
	return m.bind.own(buf)
}

// SharedExpertsFused reports whether the MoE layers run their shared experts inside the routed
// experts' launches (for steps of up to sharedFusedMaxRows rows).
func (m *Model) SharedExpertsFused() bool {
	for i := range m.lays {
		if m.lays[i].nShared > 0 {
			return true
		}
	}
	return false
}
