package bench

import "testing"

func TestFilterMatch(t *testing.T) {
	name := "linear q_b_proj [24576x1536] fp8 m=512"
	for _, c := range []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"linear", true},
		{"moe_ffn", false},
		{"moe_ffn|q_b_proj", true},
		{"moe_ffn|o_proj", false},
		{"|", false},
		{"fp8 m=512", true},
	} {
		if got := filterMatch(c.filter, name); got != c.want {
			t.Errorf("filterMatch(%q) = %v, want %v", c.filter, got, c.want)
		}
	}
	if !filterMatch("gate_proj,up_proj", "linear mlp.gate_proj,up_proj [18432x7168] bf16 m=1") {
		t.Error("a comma inside the filter must stay literal")
	}
}
