package push

// SetWaitingHook sets a function VerifyWait calls when it starts waiting (after
// its first read of the store found the challenge pending); nil removes it.
func SetWaitingHook(f func(challengeID string)) { testHookWaiting = f }
