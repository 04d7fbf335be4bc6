package bench

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"strings"
)

// Schema names the layout of result files; compare refuses files of another schema.
const Schema = "deepgo-bench/1"

// Report is one run of `deepgo bench` or `deepgo bench kernels`: what was measured, on what,
// with which code, and every figure. It is the JSON result file.
type Report struct {
	Schema   string         `json:"schema"`
	Kind     string         `json:"kind"` // "e2e" or "kernels"
	Date     string         `json:"date"` // RFC 3339, UTC
	Command  string         `json:"command"`
	Git      GitInfo        `json:"git"`
	Host     HostInfo       `json:"host"`
	Device   DeviceInfo     `json:"device"`
	Ceilings Ceilings       `json:"ceilings"`
	Model    *ModelInfo     `json:"model,omitempty"`
	Load     *LoadInfo      `json:"load,omitempty"`
	Memory   *MemoryInfo    `json:"memory,omitempty"`
	Settings map[string]any `json:"settings"`
	Results  []Result       `json:"results"`
	Profile  []ProfileTable `json:"profile,omitempty"`
	Notes    []string       `json:"notes,omitempty"`
}

// Ceilings are the device's own limits, measured in the same run.
type Ceilings struct {
	// CopyGBs: a device-to-device copy of CopyBytes, counting bytes read plus bytes written.
	CopyGBs   float64 `json:"copy_gb_s"`
	CopyBytes int64   `json:"copy_bytes"`
	Copy      Stats   `json:"copy_stats"`
	// GEMMTFLOPs: the backend's Linear on a large bf16 shape (x [M,K] . W[N,K]^T, bf16 out).
	GEMMTFLOPs float64 `json:"gemm_tflop_s"`
	GEMMShape  string  `json:"gemm_shape"`
	GEMM       Stats   `json:"gemm_stats"`
	Error      string  `json:"error,omitempty"`
	// The library baseline (kernels): which cuBLAS and cuBLASLt ran ("cuBLAS 13.0.2 (path);
	// cuBLASLt 13.0.2 (path)"), or why none ("cuBLAS not available: ..."), and their rates on the
	// same GEMM shape: cuBLAS bf16 in and out, cuBLASLt e4m3 in (scales 1), bf16 out.
	Baseline          string  `json:"baseline,omitempty"`
	CublasGEMMTFLOPs  float64 `json:"cublas_gemm_tflop_s,omitempty"`
	CublasLtFP8TFLOPs float64 `json:"cublaslt_fp8_gemm_tflop_s,omitempty"`
}

// Baseline is the library's figure for the same case (kernels; linear: cuBLAS), timed like ours:
// same repetitions, warm-up and rotating input sets. Ratio is our median over its median (above
// 1: ours is slower).
type Baseline struct {
	Lib     string `json:"lib"`     // "cublas" (bf16 cases) or "cublaslt" (fp8 cases)
	Variant string `json:"variant"` // what ran (fp8 cases: cuBLASLt fp8, x quantized per tensor)
	Stats
	Bytes  float64 `json:"bytes,omitempty"` // what the library's call moves (fp8 cases: e4m3 x and W, bf16 y)
	GBs    float64 `json:"gb_s,omitempty"`
	TFLOPs float64 `json:"tflop_s,omitempty"`
	Ratio  float64 `json:"ours_over_baseline,omitempty"`
	Check  string  `json:"check,omitempty"` // its output against ours: PASS or FAIL
	Detail string  `json:"check_detail,omitempty"`
	Error  string  `json:"error,omitempty"`
}

// ModelInfo describes the model of an end-to-end run.
type ModelInfo struct {
	Name                string `json:"name"` // the preset, or the folder's base name
	Dir                 string `json:"dir"`
	Preset              string `json:"preset,omitempty"`
	Synthetic           bool   `json:"synthetic"`
	Layers              int    `json:"layers"`
	DType               string `json:"dtype"` // of the linear weights: bf16, fp8, f32
	Params              int64  `json:"params"`
	ActiveParams        int64  `json:"active_params"`
	HeadParams          int64  `json:"head_params"`
	WeightBytes         int64  `json:"weight_bytes"`
	ActiveBytesPerToken int64  `json:"active_bytes_per_token"` // weights read by one decoded token at batch 1
	Linear              string `json:"linear_mode"`            // "w8a16" (default) or "w8a8"
}

// LoadInfo is the cost of getting to the first token.
type LoadInfo struct {
	SynthS         float64 `json:"synth_s"`         // writing the synthetic checkpoint (0: reused)
	LoadS          float64 `json:"load_s"`          // backend open + weights bound + buffers allocated
	FirstTokenS    float64 `json:"first_token_s"`   // process start to the first token's logits, synth_s excluded
	PeakHostBytes  int64   `json:"peak_host_bytes"` // VmHWM at the end of the run
	DeviceFreePre  int64   `json:"device_free_before"`
	DeviceFreePost int64   `json:"device_free_after"`
	DeviceUsed     int64   `json:"device_used_bytes"` // free before load - free after
	DeviceTotal    int64   `json:"device_total_bytes"`
}

// MemoryInfo is the model's memory by purpose (deepseek.Model.Memory) and the device's peak.
type MemoryInfo struct {
	CheckpointBytes      int64   `json:"checkpoint_bytes"`
	WeightBytes          int64   `json:"weight_bytes"`  // placed on the device (used in place on the CPU)
	WeightRatio          float64 `json:"weight_ratio"`  // weight_bytes / checkpoint_bytes
	DerivedBytes         int64   `json:"derived_bytes"` // made from the weights at load (tables, transposed copies)
	KVCacheBytes         int64   `json:"kv_cache_bytes"`
	KVBytesPerTokenLayer int64   `json:"kv_bytes_per_token_layer"` // (kv_lora_rank + qk_rope_head_dim) x cache dtype
	KVTokens             int64   `json:"kv_tokens"`
	WorkspaceBytes       int64   `json:"workspace_bytes"`
	// DevicePeakBytes: the most device memory in use, sampled after the load and after each
	// test, less what was in use before the load (graphs and library scratch included).
	DevicePeakBytes int64 `json:"device_peak_bytes,omitempty"`
}

// Result is one figure. End-to-end figures are tokens/s (higher is better); kernel figures are
// microseconds per call (lower is better) with the achieved GB/s and TFLOP/s beside them.
type Result struct {
	Key     string `json:"key"` // model|dtype|backend|test: what compare pairs figures by
	Model   string `json:"model"`
	DType   string `json:"dtype"`
	Backend string `json:"backend"`
	Device  string `json:"device"`
	Test    string `json:"test"` // pp512, tg128, tg128@b32; or a kernel case
	Unit    string `json:"unit"` // "t/s" or "us"
	Higher  bool   `json:"higher_is_better"`
	Stats
	// Floor is the best the device could do by its measured ceilings, in Unit; FracOfFloor is the
	// measured mean over it (t/s) or the floor over the measured median (us): 1 is the ceiling.
	Floor       float64 `json:"floor"`
	FloorBasis  string  `json:"floor_basis,omitempty"` // "copy" (bytes / copy bandwidth) or "gemm" (FLOPs / GEMM rate)
	FracOfFloor float64 `json:"frac_of_floor"`
	// End-to-end.
	Tokens int `json:"tokens,omitempty"`
	Batch  int `json:"batch,omitempty"`
	// Kernels.
	Kernel string  `json:"kernel,omitempty"`
	Shape  string  `json:"shape,omitempty"`
	Bytes  float64 `json:"bytes,omitempty"`
	FLOPs  float64 `json:"flops,omitempty"`
	GBs    float64 `json:"gb_s,omitempty"`
	TFLOPs float64 `json:"tflop_s,omitempty"`
	Check  string  `json:"check,omitempty"` // PASS, FAIL or SKIP
	Detail string  `json:"check_detail,omitempty"`
	Error  string  `json:"error,omitempty"`
	// Baseline: the library on the same case (kernels), nil where there is none.
	Baseline *Baseline `json:"baseline,omitempty"`
}

// Failed reports a result that is not a number: an error, or a failed check.
func (r *Result) Failed() bool { return r.Error != "" || r.Check == "FAIL" }

// ResultKey is how figures are named across runs.
func ResultKey(model, dtype, backendName, test string) string {
	return strings.Join([]string{model, dtype, backendName, test}, "|")
}

// WriteJSON writes the report to a file (indented; NaN and Inf written as 0).
func (r *Report) WriteJSON(path string) error {
	b, err := r.MarshalIndent()
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// MarshalIndent is the report as indented JSON.
func (r *Report) MarshalIndent() ([]byte, error) {
	r.sanitize()
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("bench: encode report: %w", err)
	}
	return append(b, '\n'), nil
}

func finite(x float64) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0
	}
	return x
}

func (s *Stats) sanitize() {
	s.Mean, s.SD, s.Median, s.Min, s.Max = finite(s.Mean), finite(s.SD), finite(s.Median), finite(s.Min), finite(s.Max)
	for i := range s.Samples {
		s.Samples[i] = finite(s.Samples[i])
	}
}

func (r *Report) sanitize() {
	c := &r.Ceilings
	c.CopyGBs, c.GEMMTFLOPs, c.CublasGEMMTFLOPs = finite(c.CopyGBs), finite(c.GEMMTFLOPs), finite(c.CublasGEMMTFLOPs)
	c.CublasLtFP8TFLOPs = finite(c.CublasLtFP8TFLOPs)
	c.Copy.sanitize()
	c.GEMM.sanitize()
	for i := range r.Results {
		x := &r.Results[i]
		x.Stats.sanitize()
		x.Floor, x.FracOfFloor = finite(x.Floor), finite(x.FracOfFloor)
		x.GBs, x.TFLOPs = finite(x.GBs), finite(x.TFLOPs)
		if b := x.Baseline; b != nil {
			b.Stats.sanitize()
			b.GBs, b.TFLOPs, b.Ratio = finite(b.GBs), finite(b.TFLOPs), finite(b.Ratio)
		}
	}
	for i := range r.Profile {
		for j := range r.Profile[i].Rows {
			p := &r.Profile[i].Rows[j]
			p.MsPerStep, p.Percent, p.CallsPerStep = finite(p.MsPerStep), finite(p.Percent), finite(p.CallsPerStep)
		}
	}
}
