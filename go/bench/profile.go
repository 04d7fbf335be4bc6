package bench

import (
	"sort"
	"sync"
	"time"

	"github.com/deepgo/deepgo/go/backend"
)

// Profiler is a backend.Backend that times every kernel call by the wall clock, with Sync before
// and after it, and adds the time up per kernel kind. It is exact on the CPU (kernels run
// synchronously) and correct on GPUs (each kernel is drained before the clock stops), where the
// Syncs remove the overlap of launches with execution: the per-kernel times are the kernels',
// the step time under the profiler is longer than without it. (CUDA events can come later.)
//
// Timing is off until Start; calls the model makes while loading go straight through.
type Profiler struct {
	backend.Backend // the backend measured; memory calls pass through untimed

	mu    sync.Mutex
	on    bool
	stats map[string]*kernelTime
	steps int
	wall  time.Duration
}

type kernelTime struct {
	calls int
	total time.Duration
}

// NewProfiler wraps a backend.
func NewProfiler(be backend.Backend) *Profiler {
	return &Profiler{Backend: be, stats: map[string]*kernelTime{}}
}

var _ backend.Backend = (*Profiler)(nil)

// Start clears the counters and turns timing on.
func (p *Profiler) Start() {
	p.mu.Lock()
	p.on, p.stats, p.steps, p.wall = true, map[string]*kernelTime{}, 0, 0
	p.mu.Unlock()
}

// Stop turns timing off.
func (p *Profiler) Stop() {
	p.mu.Lock()
	p.on = false
	p.mu.Unlock()
}

// AddStep counts one step of wall time d (the denominators of the table).
func (p *Profiler) AddStep(d time.Duration) {
	p.mu.Lock()
	p.steps++
	p.wall += d
	p.mu.Unlock()
}

func (p *Profiler) timed(name string, f func() error) error {
	p.mu.Lock()
	on := p.on
	p.mu.Unlock()
	if !on {
		return f()
	}
	if err := p.Backend.Sync(); err != nil {
		return err
	}
	t0 := time.Now()
	err := f()
	if serr := p.Backend.Sync(); err == nil {
		err = serr
	}
	d := time.Since(t0)
	p.mu.Lock()
	k := p.stats[name]
	if k == nil {
		k = &kernelTime{}
		p.stats[name] = k
	}
	k.calls++
	k.total += d
	p.mu.Unlock()
	return err
}

// ProfileRow is one kernel kind's share of a step.
type ProfileRow struct {
	Kernel       string  `json:"kernel"`
	CallsPerStep float64 `json:"calls_per_step"`
	MsPerStep    float64 `json:"ms_per_step"`
	Percent      float64 `json:"percent_of_step"`
}

// ProfileTable is the profile of one test.
type ProfileTable struct {
	Test      string       `json:"test"`
	Steps     int          `json:"steps"`
	MsPerStep float64      `json:"ms_per_step"` // wall time of a step under the profiler
	Rows      []ProfileRow `json:"rows"`
}

// Table returns the counters as a table, largest time first, with a last row "(host, untimed)"
// for the step time no kernel or copy accounts for (planning, Go code, logits to the host).
func (p *Profiler) Table(test string) ProfileTable {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := ProfileTable{Test: test, Steps: p.steps}
	if p.steps == 0 {
		return t
	}
	steps := float64(p.steps)
	wallMs := float64(p.wall.Microseconds()) / 1e3
	t.MsPerStep = wallMs / steps
	var sum time.Duration
	for name, k := range p.stats {
		sum += k.total
		ms := float64(k.total.Microseconds()) / 1e3
		t.Rows = append(t.Rows, ProfileRow{Kernel: name, CallsPerStep: float64(k.calls) / steps,
			MsPerStep: ms / steps, Percent: 100 * ms / max(wallMs, 1e-9)})
	}
	sort.Slice(t.Rows, func(i, j int) bool { return t.Rows[i].MsPerStep > t.Rows[j].MsPerStep })
	rest := float64((p.wall - sum).Microseconds()) / 1e3
	t.Rows = append(t.Rows, ProfileRow{Kernel: "(host, untimed)", MsPerStep: rest / steps,
		Percent: 100 * rest / max(wallMs, 1e-9)})
	return t
}

// Memory traffic the step makes (timed: uploads of the step plan, logits coming back).
func (p *Profiler) Upload(dst uintptr, src []byte) error {
	return p.timed("upload", func() error { return p.Backend.Upload(dst, src) })
}
func (p *Profiler) UploadAsync(dst uintptr, src []byte) error {
	return p.timed("upload", func() error { return p.Backend.UploadAsync(dst, src) })
}
func (p *Profiler) Download(dst []byte, src uintptr) error {
	return p.timed("download", func() error { return p.Backend.Download(dst, src) })
}
func (p *Profiler) CopyDevice(dst, src uintptr, bytes int64) error {
	return p.timed("copy", func() error { return p.Backend.CopyDevice(dst, src, bytes) })
}
func (p *Profiler) Memset(dst uintptr, value byte, bytes int64) error {
	return p.timed("memset", func() error { return p.Backend.Memset(dst, value, bytes) })
}

// The kernels.
func (p *Profiler) Embed(a *backend.EmbedArgs) error {
	return p.timed("embed", func() error { return p.Backend.Embed(a) })
}
func (p *Profiler) RMSNorm(a *backend.RMSNormArgs) error {
	return p.timed("rmsnorm", func() error { return p.Backend.RMSNorm(a) })
}
func (p *Profiler) Linear(a *backend.LinearArgs) error {
	return p.timed("linear", func() error { return p.Backend.Linear(a) })
}
func (p *Profiler) HeadMatmul(a *backend.HeadMatmulArgs) error {
	return p.timed("head_matmul", func() error { return p.Backend.HeadMatmul(a) })
}
func (p *Profiler) Rope(a *backend.RopeArgs) error {
	return p.timed("rope", func() error { return p.Backend.Rope(a) })
}
func (p *Profiler) KVStore(a *backend.KVStoreArgs) error {
	return p.timed("kv_store", func() error { return p.Backend.KVStore(a) })
}
func (p *Profiler) KVGather(a *backend.KVGatherArgs) error {
	return p.timed("kv_gather", func() error { return p.Backend.KVGather(a) })
}
func (p *Profiler) MLAPrep(a *backend.MLAPrepArgs) error {
	return p.timed("mla_prep", func() error { return p.Backend.MLAPrep(a) })
}
func (p *Profiler) MLAPrefill(a *backend.MLAPrefillArgs) error {
	return p.timed("mla_prefill", func() error { return p.Backend.MLAPrefill(a) })
}
func (p *Profiler) MLADecode(a *backend.MLADecodeArgs) error {
	return p.timed("mla_decode", func() error { return p.Backend.MLADecode(a) })
}
func (p *Profiler) SiluMul(a *backend.SiluMulArgs) error {
	return p.timed("silu_mul", func() error { return p.Backend.SiluMul(a) })
}
func (p *Profiler) MoEGate(a *backend.MoEGateArgs) error {
	return p.timed("moe_gate", func() error { return p.Backend.MoEGate(a) })
}
func (p *Profiler) MoEFFN(a *backend.MoEFFNArgs) error {
	return p.timed("moe_ffn", func() error { return p.Backend.MoEFFN(a) })
}
func (p *Profiler) Argmax(a *backend.ArgmaxArgs) error {
	return p.timed("argmax", func() error { return p.Backend.Argmax(a) })
}
func (p *Profiler) Sample(a *backend.SampleArgs) error {
	return p.timed("sample", func() error { return p.Backend.Sample(a) })
}
func (p *Profiler) Convert(a *backend.ConvertArgs) error {
	return p.timed("convert", func() error { return p.Backend.Convert(a) })
}
