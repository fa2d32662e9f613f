package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"sort"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// RPCHistogram is the metric whose per-method latency the run reports: authd's
// own measurement of each RPC, from the interceptor to the answer, without the
// load tool's scheduling or the network.
const RPCHistogram = "twofactor_rpc_duration_seconds"

// Full gRPC method names a scenario's requests call.
const (
	MethodHealth        = "/grpc.health.v1.Health/Check"
	MethodBegin         = "/twofactor.v1.ChallengeService/BeginChallenge"
	MethodVerify        = "/twofactor.v1.ChallengeService/VerifyChallenge"
	MethodVerifyAppPass = "/twofactor.v1.AppPasswordService/VerifyAppPassword"
	MethodRespondPush   = "/twofactor.v1.DeviceService/RespondPush"
)

// scenarioMethods are the RPCs whose server-side latency each scenario reports.
var scenarioMethods = map[string][]string{
	Health:      {MethodHealth},
	TOTPLogin:   {MethodBegin, MethodVerify},
	AppPassword: {MethodVerifyAppPass},
	BackupCode:  {MethodBegin, MethodVerify},
	AdminCode:   {MethodBegin, MethodVerify},
	EmailLogin:  {MethodBegin, MethodVerify},
	PushLogin:   {MethodBegin, MethodRespondPush, MethodVerify},
}

// Histogram is a cumulative latency histogram (all status codes of one method
// summed): upper bounds in seconds and the count of observations at or below each.
type Histogram struct {
	Bounds []float64
	Counts []uint64
}

// Histograms maps a full method name to its histogram.
type Histograms map[string]Histogram

// Sub returns h minus an earlier snapshot of the same series (the observations in
// between). Buckets missing from before count as empty.
func (h Histogram) Sub(before Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Counts: make([]uint64, len(h.Counts))}
	for i, c := range h.Counts {
		var b uint64
		if i < len(before.Counts) && before.Bounds[i] == h.Bounds[i] {
			b = before.Counts[i]
		}
		if c >= b {
			out.Counts[i] = c - b
		}
	}
	return out
}

// Total is the number of observations (the +Inf bucket's count).
func (h Histogram) Total() uint64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile estimates the q-quantile (0 < q < 1) as Prometheus'
// histogram_quantile does: linear interpolation inside the bucket holding it
// (from 0 for the first bucket); a quantile in the +Inf bucket is the highest
// finite bound. Zero when there are no observations.
func (h Histogram) Quantile(q float64) time.Duration {
	total := h.Total()
	if total == 0 {
		return 0
	}
	rank := q * float64(total)
	i := sort.Search(len(h.Counts), func(i int) bool { return float64(h.Counts[i]) >= rank })
	if i >= len(h.Bounds) {
		i = len(h.Bounds) - 1
	}
	if math.IsInf(h.Bounds[i], 1) {
		if i == 0 {
			return 0
		}
		return seconds(h.Bounds[i-1])
	}
	lo, below := 0.0, 0.0
	if i > 0 {
		lo, below = h.Bounds[i-1], float64(h.Counts[i-1])
	}
	in := float64(h.Counts[i]) - below
	if in <= 0 {
		return seconds(h.Bounds[i])
	}
	return seconds(lo + (h.Bounds[i]-lo)*(rank-below)/in)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// ParseHistograms reads RPCHistogram out of a Prometheus text exposition,
// summing the status codes of each method.
func ParseHistograms(r io.Reader) (Histograms, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("bench: metrics: %w", err)
	}
	out := Histograms{}
	fam, ok := fams[RPCHistogram]
	if !ok {
		return out, nil
	}
	for _, m := range fam.GetMetric() {
		var method string
		for _, l := range m.GetLabel() {
			if l.GetName() == "method" {
				method = l.GetValue()
			}
		}
		out[method] = out[method].add(m.GetHistogram().GetBucket(), m.GetHistogram().GetSampleCount())
	}
	return out, nil
}

// add sums one series' buckets (plus +Inf with the sample count) into h; series
// of one metric share their bounds.
func (h Histogram) add(buckets []*dto.Bucket, count uint64) Histogram {
	bounds := make([]float64, 0, len(buckets)+1)
	counts := make([]uint64, 0, len(buckets)+1)
	for _, b := range buckets {
		bounds, counts = append(bounds, b.GetUpperBound()), append(counts, b.GetCumulativeCount())
	}
	if len(bounds) == 0 || !math.IsInf(bounds[len(bounds)-1], 1) {
		bounds, counts = append(bounds, math.Inf(1)), append(counts, count)
	}
	if len(h.Counts) == 0 {
		return Histogram{Bounds: bounds, Counts: counts}
	}
	for i := range min(len(h.Counts), len(counts)) {
		h.Counts[i] += counts[i]
	}
	return h
}

// ScrapeHistograms returns a function that fetches url (authd's GET /metrics)
// and parses RPCHistogram from it.
func ScrapeHistograms(url string) func(ctx context.Context) (Histograms, error) {
	hc := &http.Client{Timeout: 5 * time.Second}
	return func(ctx context.Context) (Histograms, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("bench: metrics: %w", err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("bench: metrics: %s answered %s", url, resp.Status)
		}
		return ParseHistograms(io.LimitReader(resp.Body, 64<<20))
	}
}
