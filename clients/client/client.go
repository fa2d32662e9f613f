// Package client is the Go client of the twofactor API: it dials authd (TLS,
// mTLS or plaintext on loopback), sends the API key with every call, and offers
// typed helpers for the common flows. authctl and the tests use it.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

// Options say how to reach authd.
type Options struct {
	// Addr is host:port of authd (or of the load balancer in front of replicas).
	Addr string
	// APIKey is sent as "authorization: Bearer <key>" with every call.
	APIKey string
	// TLS enables TLS. CAFile (optional) is the CA that signed the server
	// certificate; CertFile and KeyFile (optional) are a client certificate for mTLS.
	TLS        bool
	CAFile     string
	CertFile   string
	KeyFile    string
	ServerName string
	// DialOptions are appended to the client's own.
	DialOptions []grpc.DialOption
}

// Client holds one connection and a stub per service.
type Client struct {
	conn         *grpc.ClientConn
	Challenges   pb.ChallengeServiceClient
	Enrollment   pb.EnrollmentServiceClient
	AppPasswords pb.AppPasswordServiceClient
	Admin        pb.AdminServiceClient
	Passwords    pb.PasswordServiceClient
	// Devices is the device API (push approval); authd authenticates its calls by
	// the device's signature, not the API key, so a backend may relay them.
	Devices pb.DeviceServiceClient
	// Dev is the development service (a simulated Telegram Start); only an
	// embedded authd with the outbox answers it.
	Dev    pb.DevServiceClient
	Health healthpb.HealthClient
}

// Dial connects to authd. Plaintext is allowed only to loopback addresses, so an
// API key is never sent in clear over a network.
func Dial(o Options) (*Client, error) {
	if o.Addr == "" {
		return nil, errors.New("client: Addr is required")
	}
	var creds credentials.TransportCredentials
	if o.TLS {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.ServerName}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("client: CA file: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("client: %s holds no PEM certificate", o.CAFile)
			}
		}
		if o.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("client: client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		creds = credentials.NewTLS(tc)
	} else {
		if !loopback(o.Addr) && o.APIKey != "" {
			return nil, fmt.Errorf("client: refusing to send an API key in plaintext to %s; enable TLS", o.Addr)
		}
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if o.APIKey != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{key: o.APIKey, secure: o.TLS}))
	}
	opts = append(opts, o.DialOptions...)
	conn, err := grpc.NewClient(o.Addr, opts...)
	if err != nil {
		return nil, err
	}
	return &Client{
		conn:         conn,
		Challenges:   pb.NewChallengeServiceClient(conn),
		Enrollment:   pb.NewEnrollmentServiceClient(conn),
		AppPasswords: pb.NewAppPasswordServiceClient(conn),
		Admin:        pb.NewAdminServiceClient(conn),
		Passwords:    pb.NewPasswordServiceClient(conn),
		Devices:      pb.NewDeviceServiceClient(conn),
		Dev:          pb.NewDevServiceClient(conn),
		Health:       healthpb.NewHealthClient(conn),
	}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

type bearer struct {
	key    string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// FindAPIKey returns the key to use: $TWOFACTOR_API_KEY, else the first line of
// keyFile, else <dataDir>/admin.key (written by an embedded authd on first start).
func FindAPIKey(keyFile, dataDir string) (string, error) {
	if k := strings.TrimSpace(os.Getenv("TWOFACTOR_API_KEY")); k != "" {
		return k, nil
	}
	if keyFile == "" {
		keyFile = filepath.Join(dataDir, "admin.key")
	}
	raw, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("no API key: set TWOFACTOR_API_KEY or -key-file (%w)", err)
	}
	return strings.TrimSpace(strings.SplitN(string(raw), "\n", 2)[0]), nil
}

// EnrollTOTP begins a TOTP enrollment. Show the returned secret, URI or QR code
// to the user once, then call FinishEnrollment with a code from their app.
func (c *Client) EnrollTOTP(ctx context.Context, userID, accountName, name string) (*pb.BeginEnrollmentResponse, error) {
	return c.Enrollment.BeginEnrollment(ctx, &pb.BeginEnrollmentRequest{
		UserId: userID, Method: pb.Method_METHOD_TOTP, Name: name,
		Options: &pb.BeginEnrollmentRequest_Totp{Totp: &pb.TotpEnrollmentOptions{AccountName: accountName}},
	})
}

// FinishWithCode finishes an enrollment with a code.
func (c *Client) FinishWithCode(ctx context.Context, userID, factorID, code string) (*pb.Factor, error) {
	resp, err := c.Enrollment.FinishEnrollment(ctx, &pb.FinishEnrollmentRequest{
		UserId: userID, FactorId: factorID, Proof: &pb.FinishEnrollmentRequest_Code{Code: code},
	})
	return resp.GetFactor(), err
}

// Begin opens a challenge for a user and method.
func (c *Client) Begin(ctx context.Context, userID string, m pb.Method, cc *pb.ClientContext) (*pb.BeginChallengeResponse, error) {
	return c.Challenges.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: userID, Method: m, Context: cc})
}

// VerifyCode answers a challenge with a code.
func (c *Client) VerifyCode(ctx context.Context, challengeID, code string, cc *pb.ClientContext) (*pb.VerifyChallengeResponse, error) {
	return c.Challenges.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{
		ChallengeId: challengeID, Response: &pb.VerifyChallengeRequest_Code{Code: code}, Context: cc,
	})
}

// LoginWithCode runs a whole code login: BeginChallenge, then VerifyChallenge.
func (c *Client) LoginWithCode(ctx context.Context, userID string, m pb.Method, code string, cc *pb.ClientContext) (*pb.VerifyChallengeResponse, error) {
	ch, err := c.Begin(ctx, userID, m, cc)
	if err != nil {
		return nil, err
	}
	return c.VerifyCode(ctx, ch.GetChallengeId(), code, cc)
}
