package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A fake server that streams n tokens then usage and [DONE]; every third request of the
// "broken" server ends without [DONE].
func fakeServer(t *testing.T, broken bool) *httptest.Server {
	var count atomic.Int32
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.Equal(t, "/v1/completions", r.URL.Path)
		var body map[string]any
		require.NoError(t, json.NewDecoder(r.Body).Decode(&body))
		require.Equal(t, true, body["return_token_ids"], "one chunk per token, even an empty one")
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < 4; i++ {
			if i > 0 {
				time.Sleep(5 * time.Millisecond)
			}
			text := []string{"x", "", "y", "z"}[i] /* an empty-text token still counts */
			fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":%q,\"token_ids\":[%d]}]}\n\n", text, 10+i)
			w.(http.Flusher).Flush()
		}
		fmt.Fprintf(w, "data: {\"choices\":[{\"index\":0,\"text\":\"\",\"finish_reason\":\"length\"}]}\n\n")
		fmt.Fprintf(w, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":8,\"completion_tokens\":4}}\n\n")
		if broken && count.Add(1)%3 == 0 {
			return
		}
		fmt.Fprintf(w, "data: [DONE]\n\n")
	}))
}

func TestServeLoad(t *testing.T) {
	srv := fakeServer(t, false)
	defer srv.Close()
	rs, err := RunServeLoad(context.Background(), ServeOptions{URL: srv.URL, Clients: []int{1, 3}, Requests: 2,
		PromptTokens: 8, MaxTokens: 4})
	require.NoError(t, err)
	require.Len(t, rs, 2)
	require.Equal(t, 6, rs[1].Requests)
	require.Equal(t, 0, rs[1].Failed)
	require.Equal(t, 24, rs[1].GeneratedTokens)
	require.Equal(t, 48, rs[1].PromptTokens)
	require.Greater(t, rs[1].OutputTokPerSec, 0.0)
	/* 3 gaps of >= 5 ms per request; the closing finish_reason chunk is not a token */
	require.GreaterOrEqual(t, rs[1].ITLP50Ms, 5.0)

	bad := fakeServer(t, true)
	defer bad.Close()
	rs, err = RunServeLoad(context.Background(), ServeOptions{URL: bad.URL, Clients: []int{1}, Requests: 3,
		PromptTokens: 8, MaxTokens: 4})
	require.NoError(t, err)
	require.Equal(t, 1, rs[0].Failed)
	require.Contains(t, rs[0].FirstError, "without [DONE]")
}
