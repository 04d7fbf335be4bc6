package deepseek

import (
	"fmt"
	"hash/fnv"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/deepgo/deepgo/go/weights"
)

// SynthOptions control a synthetic checkpoint.
type SynthOptions struct {
	DType      string // "bf16", "fp8" (e4m3 with 128x128 block scales on linear weights) or "f32"
	Seed       uint64
	ShardBytes int64 // split into files of at most this many bytes (0: 4 GiB)
	// VaryScales: fp8 block scales spread over [0.5, 1.5] x amp/448 instead of one value, so
	// that a test can tell one scale block from another.
	VaryScales bool
	Progress   func(done, total int64)
}

// Synthesize writes a checkpoint with random weights at the config's real shapes: the shapes,
// not the values, set the speed, so benchmarks and demos can run without a download. Values are
// scaled so activations stay finite (linear weights with std 1/sqrt(in)).
func Synthesize(c *weights.Config, dir string, o SynthOptions) error {
	if err := c.Validate(); err != nil {
		return err
	}
	if o.ShardBytes <= 0 {
		o.ShardBytes = 4 << 30
	}
	switch o.DType {
	case "bf16", "f32", "fp8":
	default:
		return fmt.Errorf("synth: dtype %q (want bf16, fp8 or f32)", o.DType)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	cfg := *c
	cfg.QuantizationConfig = nil
	if o.DType == "fp8" {
		cfg.QuantizationConfig = &weights.QuantConfig{QuantMethod: "fp8", Fmt: "e4m3", ActivationScheme: "dynamic",
			WeightBlockSize: []int{128, 128}}
	}
	cfg.TorchDtype = map[string]string{"bf16": "bfloat16", "fp8": "bfloat16", "f32": "float32"}[o.DType]

	var all []weights.WriteTensor
	var total int64
	for _, s := range TensorSpecs(&cfg) {
		ts := synthTensors(s, o)
		for _, t := range ts {
			total += t.bytes()
			all = append(all, t.WriteTensor)
		}
	}
	var done int64
	var mu sync.Mutex
	report := func(n int64) {
		if o.Progress == nil {
			return
		}
		mu.Lock()
		done += n
		o.Progress(done, total)
		mu.Unlock()
	}
	for i := range all {
		fill := all[i].Fill
		all[i].Fill = func(w io.Writer) error { return fill(&countWriter{w: w, add: report}) }
	}
	// Shards in order, each at most ShardBytes (a tensor larger than that gets a file of its own).
	var shards [][]weights.WriteTensor
	var cur []weights.WriteTensor
	var curBytes int64
	for _, t := range all {
		b := bytesOfTensor(t)
		if len(cur) > 0 && curBytes+b > o.ShardBytes {
			shards = append(shards, cur)
			cur, curBytes = nil, 0
		}
		cur = append(cur, t)
		curBytes += b
	}
	shards = append(shards, cur)
	meta := map[string]string{"format": "pt", "deepgo": "synthetic random weights"}
	if len(shards) == 1 {
		if err := weights.WriteFile(filepath.Join(dir, "model.safetensors"), shards[0], meta); err != nil {
			return err
		}
	} else {
		wm := map[string]string{}
		for i, sh := range shards {
			name := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			if err := weights.WriteFile(filepath.Join(dir, name), sh, meta); err != nil {
				return err
			}
			for _, t := range sh {
				wm[t.Name] = name
			}
		}
		if err := weights.WriteIndex(dir, wm, total); err != nil {
			return err
		}
	}
	js, err := cfg.Marshal()
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "config.json"), js, 0o644)
}

type countWriter struct {
	w   io.Writer
	add func(int64)
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.add(int64(n))
	return n, err
}

func bytesOfTensor(t weights.WriteTensor) int64 {
	n := int64(t.DType.Size())
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

type synthTensor struct{ weights.WriteTensor }

func (t synthTensor) bytes() int64 { return bytesOfTensor(t.WriteTensor) }

func nameSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	return seed ^ h.Sum64()
}

// splitmix64 is the counter-based generator behind every synthetic value: value i of a tensor
// depends only on (seed, name, i), so chunks can be made in parallel.
func splitmix64(x uint64) uint64 {
	x += 0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// uniform returns a value in [-1, 1).
func uniform(key, i uint64) float32 {
	return float32(splitmix64(key+i*0x632BE59BD9B4E019)>>40)/float32(1<<23) - 1
}

func synthTensors(s TensorSpec, o SynthOptions) []synthTensor {
	key := nameSeed(o.Seed, s.Name)
	n := s.Elements()
	in := s.Shape[len(s.Shape)-1]
	amp := float32(math.Sqrt(3 / float64(in))) // uniform with std 1/sqrt(in)
	val := func(i int64) float32 { return amp * uniform(key, uint64(i)) }
	switch s.Kind {
	case KindNorm:
		val = func(int64) float32 { return 1 }
	case KindBias:
		return []synthTensor{floatTensor(s.Name, s.Shape, weights.F32, n, func(int64) float32 { return 0 })}
	case KindEmbed:
		if s.Name == "model.embed_tokens.weight" {
			val = func(i int64) float32 { return 1.7 * uniform(key, uint64(i)) }
		}
	}
	dt := weights.BF16
	if o.DType == "f32" {
		dt = weights.F32
	}
	if o.DType != "fp8" || s.Kind != KindLinear {
		return []synthTensor{floatTensor(s.Name, s.Shape, dt, n, val)}
	}
	// fp8: codes uniform over [-448, 448], block scales amp/448 (so W has the same spread).
	rows, cols := s.Shape[0], s.Shape[1]
	q := synthTensor{weights.WriteTensor{Name: s.Name, DType: weights.F8E4M3, Shape: s.Shape}}
	q.Fill = func(w io.Writer) error {
		return fillParallel(w, n, 1, func(buf []byte, start int64) {
			for j := range buf {
				buf[j] = weights.F32ToE4M3(448 * uniform(key, uint64(start+int64(j))))
			}
		})
	}
	br, bc := (rows+127)/128, (cols+127)/128
	scale := func(int64) float32 { return amp / 448 }
	if o.VaryScales {
		skey := nameSeed(o.Seed, s.Name+"_scale_inv")
		scale = func(i int64) float32 { return amp / 448 * (1 + 0.5*uniform(skey, uint64(i))) }
	}
	sc := floatTensor(s.Name+"_scale_inv", []int64{br, bc}, weights.F32, br*bc, scale)
	return []synthTensor{q, sc}
}

func floatTensor(name string, shape []int64, dt weights.DType, n int64, val func(int64) float32) synthTensor {
	t := synthTensor{weights.WriteTensor{Name: name, DType: dt, Shape: shape}}
	size := int64(dt.Size())
	t.Fill = func(w io.Writer) error {
		return fillParallel(w, n, size, func(buf []byte, start int64) {
			vals := make([]float32, len(buf)/int(size))
			for j := range vals {
				vals[j] = val(start + int64(j))
			}
			_ = weights.FromF32(buf, vals, dt)
		})
	}
	return t
}

// fillParallel makes n elements of size bytes in chunks on all cores and writes them in order.
func fillParallel(w io.Writer, n, size int64, gen func(buf []byte, start int64)) error {
	const chunk = 1 << 20
	workers := runtime.GOMAXPROCS(0)
	type job struct {
		start, count int64
		buf          []byte
		done         chan struct{}
	}
	jobs := make(chan *job, workers)
	order := make(chan *job, workers)
	go func() {
		for s := int64(0); s < n; s += chunk {
			j := &job{start: s, count: min(chunk, n-s), done: make(chan struct{})}
			order <- j
			jobs <- j
		}
		close(jobs)
		close(order)
	}()
	for k := 0; k < workers; k++ {
		go func() {
			for j := range jobs {
				j.buf = make([]byte, j.count*size)
				gen(j.buf, j.start)
				close(j.done)
			}
		}()
	}
	var err error
	for j := range order {
		<-j.done
		if err == nil {
			_, err = w.Write(j.buf)
		}
		j.buf = nil
	}
	return err
}
