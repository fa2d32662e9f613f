package app

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/grpc"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/twofactor/twofactor/notify"
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/storage"
	"github.com/twofactor/twofactor/storage/storagetest"
)

// A NATS outage in the middle of a login load (issue 16, finding 2): authd runs on
// an external NATS server that the test kills and starts again on the same port
// and store. Every login (BeginChallenge and VerifyChallenge of a backup code,
// plus wrong answers, whose throttle failures are announced on NATS) keeps
// succeeding within its deadline; the overall health stays SERVING while the
// events service turns NOT_SERVING and back; and once NATS is back every audit
// row reaches the stream, each once by id.
// outageNATSToken is the test NATS server's client token (a TCP listener needs one).
const outageNATSToken = "outage-test-token-0123456789abcdefghij"

func TestLoginsSurviveANATSOutage(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	natsAddr := l.Addr().String()
	l.Close()
	natsDir := filepath.Join(t.TempDir(), "nats")
	var emb *notify.Embedded
	startNATS := func() {
		var err error
		if emb, err = notify.StartEmbedded(notify.EmbeddedConfig{StoreDir: natsDir, Listen: natsAddr, ServerName: "outage", Token: outageNATSToken}); err != nil {
			t.Fatal(err)
		}
	}
	startNATS()
	t.Cleanup(func() { emb.Shutdown() })

	dbURL := storagetest.URL(t)
	conn, cfg := startAuthd(t, "-nats-url", "nats://"+outageNATSToken+"@"+natsAddr, "-database-url", dbURL, "-health-interval", "100ms",
		"-audit-publish-timeout", "500ms")
	users := enrollBackupCodes(t, conn, 30)
	logins := &loginLoad{conn: conn, users: users}
	logins.run(t, "before", 60)
	emb.Shutdown()
	awaitHealth(t, conn, healthpb.HealthCheckResponse_NOT_SERVING)
	logins.run(t, "during", 120)
	startNATS()
	awaitHealth(t, conn, healthpb.HealthCheckResponse_SERVING)
	logins.run(t, "after", 60)
	if logins.failed != 0 {
		t.Fatalf("%d of %d RPCs failed or timed out around the outage: %v", logins.failed, logins.rpcs, logins.firstErr)
	}

	st := storagetest.OpenURL(t, dbURL)
	var rows int64
	nc, err := notify.Connect("nats://" + outageNATSToken + "@" + natsAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	names, _ := notify.NewNames(cfg.NATSPrefix)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var pendingRows int64
		st.DB(context.Background()).Model(&storage.AuditRecord{}).Count(&rows)
		st.DB(context.Background()).Model(&storage.AuditRecord{}).Where("pending").Count(&pendingRows)
		if pendingRows == 0 && auditStreamMsgs(js, names) == uint64(rows) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d rows, %d pending, %d on the stream", rows, pendingRows, auditStreamMsgs(js, names))
		}
		time.Sleep(20 * time.Millisecond) // polling a real condition, with a deadline
	}
	if rows < 240*3 {
		t.Fatalf("%d audit rows for 240 logins: the logins were not audited", rows)
	}
}

// startAuthd runs authd with args and returns a connection authenticated as the
// admin key Init generated (roles admin, login, selfservice).
func startAuthd(t *testing.T, args ...string) (*grpc.ClientConn, *Config) {
	t.Helper()
	cfg, err := Parse("authd", append([]string{"-data-dir", t.TempDir(), "-listen", "127.0.0.1:0", "-metrics-listen", ""}, args...),
		func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	return serveApp(t, cfg), cfg
}

// enrollBackupCodes issues backup codes to n users and returns their codes.
func enrollBackupCodes(t *testing.T, conn *grpc.ClientConn, n int) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for i := 0; i < n; i++ {
		user := fmt.Sprintf("user-%d", i)
		r, err := pb.NewEnrollmentServiceClient(conn).IssueBackupCodes(context.Background(), &pb.IssueBackupCodesRequest{UserId: user})
		if err != nil {
			t.Fatal(err)
		}
		out[user] = r.GetCodes()
	}
	return out
}

// loginLoad logs users in with their backup codes on 6 goroutines, one wrong
// answer before every third login. Each RPC has a 5 s deadline.
type loginLoad struct {
	conn     *grpc.ClientConn
	users    map[string][]string
	mu       sync.Mutex
	next     int // logins done so far, across runs
	rpcs     int
	failed   int
	firstErr error
}

// run does n logins and logs their rate (a figure for the reader, not asserted:
// performance is measured by the load tool, not by timed assertions).
func (l *loginLoad) run(t *testing.T, phase string, n int) {
	t.Helper()
	start := time.Now()
	defer func() { t.Logf("%s the outage: %d logins at %.0f/s", phase, n, float64(n)/time.Since(start).Seconds()) }()
	var wg sync.WaitGroup
	jobs := make(chan int)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				l.login(i)
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- l.next + i
	}
	close(jobs)
	wg.Wait()
	l.next += n
}

// login i uses user i%len(users)'s code number i/len(users).
func (l *loginLoad) login(i int) {
	user := fmt.Sprintf("user-%d", i%len(l.users))
	code := l.users[user][i/len(l.users)]
	c := pb.NewChallengeServiceClient(l.conn)
	call := func(f func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := f(ctx)
		l.mu.Lock()
		defer l.mu.Unlock()
		l.rpcs++
		if err != nil {
			l.failed++
			if l.firstErr == nil {
				l.firstErr = err
			}
		}
	}
	var id string
	call(func(ctx context.Context) error {
		r, err := c.BeginChallenge(ctx, &pb.BeginChallengeRequest{UserId: user, Method: pb.Method_METHOD_BACKUP_CODE,
			Context: &pb.ClientContext{Ip: fmt.Sprintf("198.51.100.%d", i%200+1)}})
		id = r.GetChallengeId()
		return err
	})
	verify := func(answer string, want pb.VerifyResult) {
		call(func(ctx context.Context) error {
			r, err := c.VerifyChallenge(ctx, &pb.VerifyChallengeRequest{ChallengeId: id, Response: &pb.VerifyChallengeRequest_Code{Code: answer}})
			if err == nil && r.GetResult() != want {
				err = fmt.Errorf("login %d: %v, want %v", i, r.GetResult(), want)
			}
			return err
		})
	}
	if i%3 == 0 {
		verify("AAAAA-AAAAA", pb.VerifyResult_VERIFY_RESULT_REJECTED)
	}
	verify(code, pb.VerifyResult_VERIFY_RESULT_ACCEPTED)
}

// awaitHealth polls the events health service until it reports want, checking
// each time that the overall status stays SERVING.
func awaitHealth(t *testing.T, conn *grpc.ClientConn, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	h := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		all, err := h.Check(ctx, &healthpb.HealthCheckRequest{})
		ev, everr := h.Check(ctx, &healthpb.HealthCheckRequest{Service: EventsHealthService})
		cancel()
		if err != nil || all.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("overall health %v, %v: want SERVING through a NATS outage", all, err)
		}
		if everr == nil && ev.GetStatus() == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("events health %v, %v: want %v", ev, everr, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a real condition, with a deadline
	}
}

func auditStreamMsgs(js jetstream.JetStream, names notify.Names) uint64 {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, names.AuditStream())
	if err != nil {
		return 0
	}
	info, err := s.Info(ctx)
	if errors.Is(err, context.DeadlineExceeded) || err != nil {
		return 0
	}
	return info.State.Msgs
}
