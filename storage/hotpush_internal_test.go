package storage

import (
	"slices"
	"testing"
)

// The push login's column lists, with what a statement leaves out on purpose,
// are exactly their GORM models' columns: a new column the hot path misses fails here.
func TestHotPushColumnsMatchModels(t *testing.T) {
	cases := []struct {
		name          string
		model         []string
		cols, omitted []string
	}{
		{"pushDeviceCols", modelColumns(t, &PushDevice{}), pushDeviceCols, nil},
		{"pushChallengeCols", modelColumns(t, &PushChallenge{}), pushChallengeCols, nil},
		{"pushLimitCols", modelColumns(t, &PushLimit{}), pushLimitCols, nil},
		{"pushNonceCols", modelColumns(t, &PushNonce{}), pushNonceCols, nil},
		{"pendingPushCols", modelColumns(t, &PushChallenge{}), pendingPushCols, pendingPushOmitted},
	}
	for _, tc := range cases {
		got := append(slices.Clone(tc.cols), tc.omitted...)
		slices.Sort(got)
		want := slices.Clone(tc.model)
		slices.Sort(want)
		if !slices.Equal(got, want) || len(slices.Compact(slices.Clone(got))) != len(got) {
			t.Errorf("%s with its omissions = %v, want the model's columns %v", tc.name, got, want)
		}
	}
	// The scans read the full lists in model order (scanPushDevice and the others
	// assign by position).
	for name, c := range map[string]struct{ cols, model []string }{
		"pushDeviceCols":    {pushDeviceCols, modelColumns(t, &PushDevice{})},
		"pushChallengeCols": {pushChallengeCols, modelColumns(t, &PushChallenge{})},
		"pushLimitCols":     {pushLimitCols, modelColumns(t, &PushLimit{})},
		"challengeCols":     {challengeCols, modelColumns(t, &Challenge{})},
	} {
		if !slices.Equal(c.cols, c.model) {
			t.Errorf("%s = %v, not in model order %v", name, c.cols, c.model)
		}
	}
}
