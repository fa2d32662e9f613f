package server

import (
	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
	"github.com/twofactor/twofactor/providers/admincodes"
	"github.com/twofactor/twofactor/providers/apppasswords"
	"github.com/twofactor/twofactor/providers/backupcodes"
	"github.com/twofactor/twofactor/providers/webauthn"
	"github.com/twofactor/twofactor/server/challenge"
)

// challengeService serves ChallengeService: login requirements, challenges.
type challengeService struct {
	pb.UnimplementedChallengeServiceServer
	*core
	challenges *challenge.Challenges
}

// enrollmentService serves EnrollmentService: factors and backup codes.
type enrollmentService struct {
	pb.UnimplementedEnrollmentServiceServer
	*core
	backupCodes *backupcodes.Provider
}

// appPasswordService serves AppPasswordService.
type appPasswordService struct {
	pb.UnimplementedAppPasswordServiceServer
	*core
	apppw *apppasswords.Service
}

// adminService serves AdminService.
type adminService struct {
	pb.UnimplementedAdminServiceServer
	*core
	adminCodes *admincodes.Provider
	apppw      *apppasswords.Service // optional: revoke on DeleteUser
	wa         *webauthn.Provider    // optional: U2F import
}

// passwordService serves PasswordService.
type passwordService struct {
	pb.UnimplementedPasswordServiceServer
	*core
	breached PasswordChecker
}
