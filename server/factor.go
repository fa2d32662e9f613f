package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/policy"
	"github.com/twofactor/twofactor/server/challenge"
	"github.com/twofactor/twofactor/storage"
)

// Factor describes one second-factor method: everything the server needs to
// offer it. Each adapter (method_<name>.go) returns one from its constructor
// (TOTPFactor, WebAuthnFactor, BackupCodeFactor, AdminCodeFactor); server/app
// lists them in NewRegistry. A pb.Method no registered Factor claims cannot be
// begun or enrolled (InvalidArgument naming "method").
type Factor struct {
	// Name is the method's stored, audited and policy name (e.g. "totp"): the
	// provider package's Method constant. 1 to 32 bytes.
	Name string
	// Method is its wire value.
	Method pb.Method
	// Enrollable: users set it up as a factor (a factors row of method Name);
	// AdminIssued: an admin issues it (having one does not require a second factor).
	Enrollable, AdminIssued bool
	// LowEntropy: its secrets are short codes a guesser could hit, so the proof
	// that finishes an enrollment is throttled like a challenge answer (answers
	// to challenges are throttled for every method).
	LowEntropy bool
	// Unguessable: its answers cannot be guessed in the attempts a client
	// network is allowed (a backup code's 49.5 bits, an admin code's 79, a
	// WebAuthn signature over a fresh challenge, a remembered-device token), so
	// wrong answers are counted per network only and never against the user,
	// and the user's lock does not hold its challenges up (throttle
	// Subjects.HighEntropy: guessing at it locks nobody out, and an admin code
	// recovers a locked user). TOTP and one-time codes sent by email or SMS,
	// and push numbers, are guessable: leave it false.
	Unguessable bool
	// FindsUser: a BeginChallenge may leave user_id empty, and the answer names
	// the user (a passkey login).
	FindsUser bool

	// Challenge begins and verifies its challenges (required).
	Challenge ChallengeMethod
	// Enroll runs BeginEnrollment/FinishEnrollment for it; nil: not enrolled that way.
	Enroll Enroller
	// Usable tells, for a method without factor rows (recovery codes), whether the
	// user can pass it now; nil: the user's active factors of Name tell.
	Usable func(ctx context.Context, userID string) (bool, error)
	// Details sets the method's public details of a stored factor on out (the
	// oneof of pb.Factor); nil: none. Never a secret.
	Details func(f *storage.Factor, out *pb.Factor)
	// Status maps the factor's own errors to a gRPC status (ok false: not its
	// own; toStatus goes on). nil: none.
	Status func(err error) (st error, ok bool)
}

// ChallengeMethod adapts one provider to the challenge flow.
//
// Later methods extend it without changing the server's flow: a verify that
// must wait (push approval) returns a Verdict with Pending set; a method that
// can resend or report delivery implements Resender / DeliveryReporter.
type ChallengeMethod interface {
	// Begin checks that the user can use the method and prepares a challenge.
	// ErrNoFactor: the user has none (or not the one named).
	Begin(ctx context.Context, in BeginInput) (BeginOutput, error)
	// Verify checks an answer to an open challenge. A wrong answer is a Verdict,
	// not an error; single use of codes is the provider's job (a conditional
	// update), single use of the challenge the server's. It runs inside the
	// challenge's single-use unit (a transaction for stored challenges).
	Verify(ctx context.Context, ch *challenge.Challenge, ans Answer) (Verdict, error)
}

// Waiter is a ChallengeMethod whose answer comes from elsewhere (a device
// approving a push): VerifyChallenge calls Wait first, outside any transaction,
// and answers VERIFY_RESULT_PENDING (no attempt used, nothing counted) while it
// reports pending; otherwise it goes on to Verify.
type Waiter interface {
	Wait(ctx context.Context, ch *challenge.Challenge, ans Answer) (pending bool, err error)
}

// Resender is a ChallengeMethod that can send a challenge's message again
// (ResendChallenge): it returns the delivery status after the resend and the
// deliveries to perform.
type Resender interface {
	Resend(ctx context.Context, ch *challenge.Challenge, in ResendInput) (*pb.DeliveryStatus, []Delivery, error)
}

// ResendInput is a validated ResendChallenge request.
type ResendInput struct {
	Client *pb.ClientContext
	Locale string
}

// DeliveryReporter is a ChallengeMethod that knows how its out-of-band message
// fared (queued, delivered, failed): GetChallengeStatus and VerifyChallenge
// report it.
type DeliveryReporter interface {
	DeliveryStatus(ctx context.Context, ch *challenge.Challenge) (*pb.DeliveryStatus, error)
}

// Enroller enrolls factors of one method.
type Enroller interface {
	// Begin creates a pending factor; req has passed the user id, name and policy checks.
	Begin(ctx context.Context, req *pb.BeginEnrollmentRequest) (*pb.BeginEnrollmentResponse, error)
	// Finish activates the pending factor req names once proved. A wrong proof is
	// a *WrongProof error: the server counts it (throttle, metrics) and answers
	// InvalidArgument.
	Finish(ctx context.Context, req *pb.FinishEnrollmentRequest) (*storage.Factor, error)
}

// TxFinisher is an Enroller whose Finish can run then inside the transaction
// that activates the factor, with the active factor: an error from then undoes
// the activation. FinishEnrollment moves the user's credentials epoch there. An
// Enroller that is not one has its Finish run in a transaction (store.InTx) with
// then after it: an error of Finish other than a *WrongProof then undoes what
// Finish wrote (its own transactions join that one).
type TxFinisher interface {
	FinishThen(ctx context.Context, req *pb.FinishEnrollmentRequest, then func(ctx context.Context, f *storage.Factor) error) (*storage.Factor, error)
}

// WrongProof is an enrollment proof that does not match (a wrong TOTP code).
type WrongProof struct{ Field, Message string }

func (e *WrongProof) Error() string { return e.Field + ": " + e.Message }

// BeginInput is a validated BeginChallenge request.
type BeginInput struct {
	UserID   string // "" only for a passkey login (WebAuthn without a user)
	FactorID string
	Client   *pb.ClientContext
	// Locale is the user's locale, if the backend gave one (messages of codes).
	Locale string
}

// BeginOutput is what a method's Begin prepared.
type BeginOutput struct {
	// UserID is set when the method found the user itself (passkeys).
	UserID      string
	FactorID    string
	Session     []byte
	OptionsJSON string
	// Sealed asks for a challenge carried in its id instead of a stored row
	// (granted only with a FactorID and no Session; see package challenge);
	// FromStep is then the bound factor's last TOTP step.
	Sealed   bool
	FromStep *int64
	// Deliveries are out-of-band work (a code to send, a push to deliver) the
	// server performs after the challenge is stored, in order; the first that
	// fails fails BeginChallenge with Unavailable (the stored challenge then
	// expires unused), and when it certainly published nothing
	// (notify.NotPublished) its Undo, if it has one, takes back what the Begin
	// reserved for it.
	Deliveries []Delivery
	// Respond, if set, adds the method's own fields to the BeginChallenge
	// response (a push's number to show).
	Respond func(resp *pb.BeginChallengeResponse)
}

// Delivery is one piece of out-of-band work a Begin asks for. It holds what it
// sends (e.g. a code in clear, in memory only) and must not log or store it in
// clear; a code factor stores only the code's keyed hash in the Session.
type Delivery interface {
	Deliver(ctx context.Context, ch Begun) error
}

// Undoer is a Delivery that can take back what was reserved for it (a pending
// push, sends counted toward daily caps) once its delivery failed without
// publishing anything. Undo must be safe under concurrency and on any number of
// replicas: a conditional update in the store that undoes one delivery at most
// once and never takes a count below what was really sent.
type Undoer interface {
	Undo(ctx context.Context) error
}

// Begun is the challenge a Delivery belongs to, as it was stored.
type Begun struct {
	ID        string // the id the caller answers with
	Challenge *challenge.Challenge
}

// Answer is a VerifyChallenge response, one of its fields set.
type Answer struct {
	Code          string
	AssertionJSON string
	// PushWait is how long a push verification may wait for a device (Push set).
	PushWait time.Duration
	Push     bool
}

// Verdict is a method's judgement of an answer.
type Verdict struct {
	Accepted bool
	Reason   pb.RejectReason
	FactorID string
	UserID   string // set when the method resolved the user (passkeys)
	// CompleteLogin: the answer counts as a whole login (a passkey, by policy).
	CompleteLogin bool
	// Audit are the method's own events (a cloned key, codes running low); the
	// server records them once the answer's transaction has committed.
	Audit []AuditEvent
}

var (
	// ErrNoFactor: the user has no active factor of the method (or not the one named).
	ErrNoFactor = errors.New("no active factor")
	// ErrChallengeGone: a concurrent verifier consumed or killed the challenge.
	ErrChallengeGone = challenge.ErrGone
)

// Registry is the set of factors one server offers, in the order answers list them.
type Registry struct {
	order    []*Factor
	byMethod map[pb.Method]*Factor
	byName   map[string]*Factor
}

// NewRegistry registers fs, in order.
func NewRegistry(fs ...Factor) (*Registry, error) {
	r := &Registry{byMethod: map[pb.Method]*Factor{}, byName: map[string]*Factor{}}
	for _, f := range fs {
		if err := r.Register(f); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// Register adds f. Names and methods are unique.
func (r *Registry) Register(f Factor) error {
	switch {
	case f.Name == "" || len(f.Name) > 32:
		return fmt.Errorf("server: factor name %q: 1 to 32 bytes", f.Name)
	case f.Method == pb.Method_METHOD_UNSPECIFIED:
		return fmt.Errorf("server: factor %s: Method is required", f.Name)
	case f.Challenge == nil:
		return fmt.Errorf("server: factor %s: Challenge is required", f.Name)
	case r.byName[f.Name] != nil || r.byMethod[f.Method] != nil:
		return fmt.Errorf("server: factor %s (%s) registered twice", f.Name, f.Method)
	}
	p := &f
	r.order = append(r.order, p)
	r.byMethod[f.Method], r.byName[f.Name] = p, p
	return nil
}

// PolicyMethods lists the factors for policy.Options.Methods.
func (r *Registry) PolicyMethods() policy.Methods {
	out := make(policy.Methods, len(r.order))
	for i, f := range r.order {
		out[i] = policy.Method{Name: f.Name, Enrollable: f.Enrollable, AdminIssued: f.AdminIssued}
	}
	return out
}

func (r *Registry) method(m pb.Method) (*Factor, bool) { f, ok := r.byMethod[m]; return f, ok }
func (r *Registry) named(name string) (*Factor, bool)  { f, ok := r.byName[name]; return f, ok }

// name is the storage and audit name of a method ("" when unregistered).
func (r *Registry) name(m pb.Method) string {
	if f, ok := r.byMethod[m]; ok {
		return f.Name
	}
	return ""
}

// wire is the wire value of a method name (UNSPECIFIED when unregistered).
func (r *Registry) wire(name string) pb.Method {
	if f, ok := r.byName[name]; ok {
		return f.Method
	}
	return pb.Method_METHOD_UNSPECIFIED
}

func (r *Registry) methodsToPB(names []string) []pb.Method {
	out := make([]pb.Method, 0, len(names))
	for _, n := range names {
		if m := r.wire(n); m != pb.Method_METHOD_UNSPECIFIED {
			out = append(out, m)
		}
	}
	return out
}

// factorToPB maps a stored factor to the wire, without any secret.
func (r *Registry) factorToPB(f *storage.Factor) *pb.Factor {
	out := &pb.Factor{
		Id:        f.ID,
		UserId:    f.UserID,
		Method:    r.wire(f.Method),
		Name:      f.Name,
		State:     pb.FactorState_FACTOR_STATE_ACTIVE,
		CreatedAt: timestamppb.New(f.CreatedAt),
	}
	if f.State == storage.FactorPending {
		out.State = pb.FactorState_FACTOR_STATE_PENDING
	}
	if f.LastUsedAt != nil {
		out.LastUsedAt = timestamppb.New(*f.LastUsedAt)
	}
	if d, ok := r.byName[f.Method]; ok && d.Details != nil {
		d.Details(f, out)
	}
	return out
}

// status maps a factor's own error, trying each registered factor.
func (r *Registry) status(err error) (error, bool) {
	for _, f := range r.order {
		if f.Status != nil {
			if st, ok := f.Status(err); ok {
				return st, true
			}
		}
	}
	return nil, false
}
