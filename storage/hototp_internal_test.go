package storage

import (
	"slices"
	"testing"
)

// otpCodeCols is exactly OTPCode's columns, in model order: a new column that
// the code login's statements would miss fails here.
func TestHotOTPColumnsMatchModel(t *testing.T) {
	if want := modelColumns(t, &OTPCode{}); !slices.Equal(otpCodeCols, want) {
		t.Errorf("otpCodeCols = %v, want the model's columns %v", otpCodeCols, want)
	}
}
