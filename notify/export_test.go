package notify

// SetAfterRemember installs the crash-simulation hook: f runs after a delivered id is
// recorded and before the acknowledgement; returning true abandons the message there.
func SetAfterRemember(w *Worker, f func(Message) bool) { w.afterRemember = f }
