package engine

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/deepgo/deepgo/go/sampling"
)

// Greedy decoding picks on the device (argmax, only the id downloaded) unless the request needs
// the logits on the host; both paths must give the same tokens.
func TestGenerateDeviceGreedyMatchesHost(t *testing.T) {
	e := openFixture(t, 1, 64, CacheConfig{})
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 6; i++ {
		prompt := randomPrompt(r, 1+r.IntN(40))
		dev := greedy(12)
		require.True(t, sampling.New(dev, e.Cfg.VocabSize).ArgmaxOnly())
		host := dev
		host.Logprobs = true // needs the logits row: the host sampler
		require.False(t, sampling.New(host, e.Cfg.VocabSize).ArgmaxOnly())
		got, want := generateIDs(t, e, prompt, dev), generateIDs(t, e, prompt, host)
		require.Equal(t, want, got, "prompt %d", i)
		// MinTokens: the first steps go through the host (stop ids suppressed), then the device.
		mt := dev
		mt.MinTokens, mt.StopIDs = 3, []int{want[0], want[1]}
		mh := mt
		mh.Logprobs = true
		require.Equal(t, generateIDs(t, e, prompt, mh), generateIDs(t, e, prompt, mt), "prompt %d, min_tokens", i)
	}
}

// The model's memory accounting: every checkpoint tensor placed once (the fixtures have no
// unused tensors), the KV cache exactly latent + rope elements per token per layer.
func TestModelMemory(t *testing.T) {
	for _, name := range []string{"lora-yarn-bf16", "fp8-block-yarn"} {
		e, err := Open(Config{ModelDir: fixtureModel(name), Backend: "cpu", Threads: 1, MaxBatch: 2, MaxContext: 64,
			MaxTokens: 16})
		require.NoError(t, err)
		mem := e.Model.Memory()
		c := e.Cfg
		require.Positive(t, mem.Checkpoint, name)
		require.Equal(t, mem.Checkpoint, mem.Weights, "%s: weights placed vs checkpoint", name)
		require.Equal(t, int64(c.KvLoraRank+c.QkRopeHeadDim)*e.Model.Opts.CacheDType.Size(), mem.KVPerTokenLayer, name)
		require.Equal(t, mem.KVTokens*mem.KVPerTokenLayer*int64(c.NumHiddenLayers), mem.KVCache, name)
		require.GreaterOrEqual(t, mem.KVTokens, int64(64), name)
		require.Positive(t, mem.Workspace, name)
		e.Close()
	}
}
