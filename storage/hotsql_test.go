package storage

import (
	"slices"
	"sync"
	"testing"

	"gorm.io/gorm/schema"
)

func modelColumns(t *testing.T, model any) []string {
	t.Helper()
	s, err := schema.Parse(model, &sync.Map{}, schema.NamingStrategy{})
	if err != nil {
		t.Fatal(err)
	}
	return s.DBNames
}

// Every hand-written column list, with what its statement leaves out on purpose,
// is exactly its GORM model's columns: a new column the hot path misses fails here.
func TestHotSQLColumnsMatchModels(t *testing.T) {
	challenge, factor := modelColumns(t, &Challenge{}), modelColumns(t, &Factor{})
	without := func(all, keep []string) []string {
		var out []string
		for _, c := range all {
			if !slices.Contains(keep, c) {
				out = append(out, c)
			}
		}
		return out
	}
	cases := []struct {
		name          string
		model         []string
		cols, omitted []string
	}{
		{"challengeCols", challenge, challengeCols, nil},
		{"factorCols", factor, factorCols, nil},
		{"sealedStateFactorCols", factor, sealedStateFactorCols, sealedStateFactorOmitted},
		{"failSealedChallengeCols", challenge, failSealedChallengeCols, failSealedChallengeOmitted},
		// ListFactorHeads reads two columns by design: everything else is omitted,
		// and a new column must be named here to be.
		{"factorHeadsCols", factor, factorHeadsCols, without(factor, factorHeadsCols)},
		{"auditCols", modelColumns(t, &AuditRecord{}), auditCols, nil},
		{"throttleStateCols", modelColumns(t, &ThrottleState{}), throttleStateCols, nil},
		{"pushDeviceCols", modelColumns(t, &PushDevice{}), pushDeviceCols, nil},
		{"pushChallengeCols", modelColumns(t, &PushChallenge{}), pushChallengeCols, nil},
		{"pushLimitCols", modelColumns(t, &PushLimit{}), pushLimitCols, nil},
		{"pushNonceCols", modelColumns(t, &PushNonce{}), pushNonceCols, nil},
		{"pendingPushCols", modelColumns(t, &PushChallenge{}), pendingPushCols, pendingPushOmitted},
		{"otpCodeCols", modelColumns(t, &OTPCode{}), otpCodeCols, nil},
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
	// joinedFactor scans the joined factor as f_<column>.
	var joined []string
	for _, c := range modelColumns(t, &challengeFactorRow{}) {
		if len(c) > 2 && c[:2] == "f_" {
			joined = append(joined, c[2:])
		}
	}
	slices.Sort(joined)
	want := slices.Clone(factor)
	slices.Sort(want)
	if !slices.Equal(joined, want) {
		t.Errorf("joinedFactor columns %v, want %v", joined, want)
	}
}

// The scans of the hot path assign by position (scanPushDevice, scanOTPCode,
// scanThrottleState and the others), so their lists are in model order; that
// they hold every column is TestHotSQLColumnsMatchModels'.
func TestHotScansReadModelOrder(t *testing.T) {
	for name, c := range map[string]struct{ cols, model []string }{
		"pushDeviceCols":    {pushDeviceCols, modelColumns(t, &PushDevice{})},
		"pushChallengeCols": {pushChallengeCols, modelColumns(t, &PushChallenge{})},
		"pushLimitCols":     {pushLimitCols, modelColumns(t, &PushLimit{})},
		"challengeCols":     {challengeCols, modelColumns(t, &Challenge{})},
		"otpCodeCols":       {otpCodeCols, modelColumns(t, &OTPCode{})},
		"throttleStateCols": {throttleStateCols, modelColumns(t, &ThrottleState{})},
	} {
		if !slices.Equal(c.cols, c.model) {
			t.Errorf("%s = %v, not in model order %v", name, c.cols, c.model)
		}
	}
}
