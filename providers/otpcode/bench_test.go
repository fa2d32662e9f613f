package otpcode

import "testing"

// BenchmarkBeginVerify is one login: a code drawn, sealed, hashed, stored and
// counted against the caps, then one right answer (attempt, compare, consume).
func BenchmarkBeginVerify(b *testing.B) {
	e := newEnv(b, Config{UserDailyCap: 10000, DestinationDailyCap: 10000})
	e.enroll(b, "u1", Email, "alice@example.com")
	b.ResetTimer()
	for b.Loop() {
		ch := e.begin(b, "u1", Email)
		if res, err := e.p.Verify(e.ctx, "u1", ch.ID, ch.Send.Code); err != nil || !res.Accepted {
			b.Fatal(err)
		}
	}
}
