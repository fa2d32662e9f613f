package demo

import "flag"

// Flags are cmd/demo's settings. They live here, beside the handler they
// configure, so the deployment checks can read the real flag set.
type Flags struct {
	Listen  string
	Origin  string
	Addr    string
	DataDir string
	KeyFile string
}

// NewFlagSet defines cmd/demo's flags on a new flag set writing into f.
func NewFlagSet(name string, f *Flags) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.StringVar(&f.Listen, "listen", "127.0.0.1:8080", "HTTP listen address")
	fs.StringVar(&f.Origin, "origin", "http://localhost:8080", "the origin the browser uses; authd's -webauthn-origins must list it")
	fs.StringVar(&f.Addr, "addr", "127.0.0.1:7443", "authd gRPC address")
	fs.StringVar(&f.DataDir, "data-dir", "data", "embedded authd's data folder, where admin.key is")
	fs.StringVar(&f.KeyFile, "key-file", "", "file holding the API key (default <data-dir>/admin.key; env TWOFACTOR_API_KEY wins)")
	return fs
}
