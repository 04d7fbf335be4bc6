package deepseek

import (
	"os"
	"sync"

	"github.com/deepgo/deepgo/go/backend"
)

// Decode runs MLA in its absorbed form: q_lat[h] = W_kc[h]^T . q_nope[h], with W_kc[h] the nope
// rows of kv_b_proj for head h ([nope, latent]). Read in place that is head_matmul's trans 0: each
// output is a column of W, which the tensor-core GEMV cannot stream (it takes weight rows as
// outputs); on the H100 it took ~12 us a layer for 1-2 MB (peer-7b, fp8 and bf16). So GPU
// backends also get W_kc^T as a matrix of its own, [heads * latent, nope] (head h's rows
// h*latent + j), and the product becomes a trans 1 head_matmul on the GEMV's tile. It costs
// heads * nope * latent weight elements more per layer (peer-7b bf16: 2 MB, 0.2% of the weights).
// fp8 keeps its block scales, transposed: each needs a scale block to stay one block, which holds
// when the scale blocks divide nope, nope + v_head and latent (DeepSeek's 128 x 128 do).
// DEEPGO_WKC_T=0 reads kv_b_proj in place (trans 0), as the CPU does unless DEEPGO_WKC_T=1.

// bindKcT sets a.kcT from the checkpoint's kv_b_proj (a.kvB already bound), or leaves it empty.
func (m *Model) bindKcT(a *attnWeights, name string) error {
	if v := os.Getenv("DEEPGO_WKC_T"); v == "0" || (m.be.HostIsDevice() && v != "1") {
		return nil
	}
	c := m.Cfg
	heads, nope, lat := int64(c.NumAttentionHeads), int64(c.QkNopeHeadDim), int64(c.KvLoraRank)
	per := nope + int64(c.VHeadDim) // kv_b rows per head
	w := a.kvB
	br, bc := int64(w.BlockRows), int64(w.BlockCols)
	if w.DType == backend.F8E4M3 && (br <= 0 || bc <= 0 || nope%br != 0 || per%br != 0 || lat%bc != 0) {
		return nil
	}
	t, err := m.bind.tensor(name)
	if err != nil {
		return err
	}
	es := w.DType.Size()
	if int64(len(t.Data)) != heads*per*lat*es {
		return shapeErr(t, heads*per, lat)
	}
	out := make([]byte, heads*lat*nope*es)
	var wg sync.WaitGroup
	for h := int64(0); h < heads; h++ {
		wg.Add(1)
		go func() { // out[h*lat + j][i] = W[h*per + i][j]
			defer wg.Done()
			for i := int64(0); i < nope; i++ {
				src := t.Data[(h*per+i)*lat*es:]
				for j := int64(0); j < lat; j++ {
					copy(out[((h*lat+j)*nope+i)*es:][:es], src[j*es:][:es])
				}
			}
		}()
	}
	wg.Wait()
	kt := backend.Weight{Rows: heads * lat, Cols: nope, LD: nope, DType: w.DType}
	if kt.Data, err = m.bind.own(out); err != nil {
		return err
	}
	if w.DType == backend.F8E4M3 {
		if kt.Scale, err = m.kcTScales(name, heads, nope, per, lat, br, bc); err != nil {
			return err
		}
		kt.BlockRows, kt.BlockCols = int32(bc), int32(br)
	}
	a.kcT = kt
	return nil
}

// kcTScales: block (R, C) of W_kc^T (bc rows of latent, br columns of nope) is block
// (h*per/br + C, R - h*lat/bc) of kv_b_proj's scales, h = R / (lat/bc).
func (m *Model) kcTScales(name string, heads, nope, per, lat, br, bc int64) (uintptr, error) {
	st, err := m.bind.tensor(name + "_scale_inv")
	if err != nil {
		return 0, err
	}
	sr, sc := heads*per/br, lat/bc // per % br == 0 and lat % bc == 0 (checked)
	if int64(len(st.Data)) != sr*sc*4 {
		return 0, shapeErr(st, sr, sc)
	}
	rb, cb := lat/bc, nope/br // blocks per head of W_kc^T: rows, columns
	out := make([]byte, 0, heads*rb*cb*4)
	for h := int64(0); h < heads; h++ {
		for r := int64(0); r < rb; r++ {
			for ci := int64(0); ci < cb; ci++ {
				o := ((h*per/br+ci)*sc + r) * 4
				out = append(out, st.Data[o:o+4]...)
			}
		}
	}
	return m.bind.own(out)
}

// KcTransposed reports whether decode reads W_kc^T (bound apart on GPU backends; absorb.go).
func (m *Model) KcTransposed() bool {
	return len(m.lays) > 0 && m.lays[0].attn.kcT.Data != 0
}
