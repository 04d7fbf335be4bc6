package tests

import (
	"math"
	"os"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/model/deepseek"
	"github.com/deepgo/deepgo/go/weights"
)

// The model computes some steps in a faster form than the one the transformers fixtures check
// (tests/reference); each form has an environment switch back to the checked one, and here both
// run on the same small synthetic checkpoint and must agree. fp8 checkpoints get varied block
// scales, so that a scale taken from the wrong block shows.

// TestSharedExpertsAsExperts: steps of up to 8 rows run the shared experts as extra routed experts
// (go/model/deepseek/shared_experts.go). Two shared experts of 128: in fp8 the down pieces get
// scale arrays of their own, which no fixture reaches (the fixtures' pieces are not whole blocks).
func TestSharedExpertsAsExperts(t *testing.T) {
	compareForms(t, "DEEPGO_MOE_SHARED", "apart", "", (*deepseek.Model).SharedExpertsFused,
		func(c *weights.Config) {
			c.VocabSize, c.HiddenSize, c.MoeIntermediateSize, c.IntermediateSize, c.NSharedExperts = 512, 256, 128, 256, 2
		}, []int32{3, 141, 59, 265, 35}, []int32{89, 79, 323})
}

// TestKcTransposed: decode's q_lat = W_kc^T q_nope on a transposed copy of W_kc
// (go/model/deepseek/absorb.go) against head_matmul's trans 0 on kv_b_proj in place. 128-wide nope
// and a 256-wide latent: two scale blocks per head, transposed. Decode only: prefill does not use
// the absorbed form. On the CPU the copy is made only when asked for (DEEPGO_WKC_T=1).
func TestKcTransposed(t *testing.T) {
	on := "1"
	if name := os.Getenv("DEEPGO_TEST_BACKEND"); name != "" && name != "cpu" {
		on = ""
	}
	compareForms(t, "DEEPGO_WKC_T", "0", on, (*deepseek.Model).KcTransposed,
		func(c *weights.Config) {
			c.VocabSize, c.HiddenSize, c.QLoraRank, c.KvLoraRank = 512, 256, 128, 256
			c.QkNopeHeadDim, c.VHeadDim, c.QkRopeHeadDim = 128, 128, 64
		}, nil, []int32{3, 141, 59, 265, 35, 89})
}

// compareForms loads a 2-layer "tiny" checkpoint (edited by edit) in fp8 and bf16 with env=off and
// env=on (active must say which form is in use), runs prompt as one step and then decodes one token
// at a time, and compares every logits row.
func compareForms(t *testing.T, env, off, on string, active func(*deepseek.Model) bool, edit func(*weights.Config),
	prompt, decodes []int32) {
	act, bound := actDType()
	for _, dt := range []string{"fp8", "bf16"} {
		t.Run(dt, func(t *testing.T) {
			dir := t.TempDir()
			c, err := deepseek.Preset("tiny", 2)
			require.NoError(t, err)
			edit(c)
			require.NoError(t, deepseek.Synthesize(c, dir, deepseek.SynthOptions{DType: dt, Seed: 7, VaryScales: true}))
			run := func(mode string) []float32 {
				t.Setenv(env, mode)
				m := loadModel(t, testBackend(t), dir, deepseek.Options{MaxBatch: 1, MaxContext: 64, MaxTokens: 64,
					MaxLogitRows: 8, BlockSize: 4, ActDType: act, CacheDType: act})
				require.Equal(t, mode == on, active(m), "%s=%q", env, mode)
				seq := &deepseek.Sequence{}
				defer m.KV.Release(seq)
				var got []float32
				if len(prompt) > 0 {
					out, err := m.Step([]deepseek.Request{{Seq: seq, Tokens: prompt, Logits: deepseek.LogitsAll}})
					require.NoError(t, err)
					got = append(got, out[0]...)
				}
				for _, id := range decodes {
					out, err := m.Step([]deepseek.Request{{Seq: seq, Tokens: []int32{id}, Logits: deepseek.LogitsLast}})
					require.NoError(t, err)
					got = append(got, out[0]...)
				}
				return got
			}
			want, got := run(off), run(on)
			require.Len(t, got, len(want))
			var worst, scale float64
			for i := range want {
				require.False(t, math.IsNaN(float64(got[i])), "NaN at %d", i)
				worst = math.Max(worst, math.Abs(float64(got[i]-want[i])))
				scale = math.Max(scale, math.Abs(float64(want[i])))
			}
			// f32: the forms differ in summation order only. bf16: also in where intermediates are
			// rounded to bf16 (up to 2.4e-3 measured); the fixtures' bound against transformers is far
			// looser, and one wrong scale block gives 8e-2 or more here.
			lim := 1e-5
			if bound > maxRelDiff {
				lim = 2e-2
			}
			t.Logf("max |logits(%s=%q) - logits(%s=%q)| / max |logit| = %.2e (bound %.0e)", env, on, env, off, worst/scale, lim)
			require.Less(t, worst, lim*scale)
		})
	}
}
