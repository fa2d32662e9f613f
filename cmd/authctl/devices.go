package main

import (
	"flag"
	"fmt"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("devices list", command{usage: "devices list <user> [-actor A]", help: "list a user's remembered devices (as admin A with -actor)", run: devicesList})
	register("devices revoke", command{usage: "devices revoke <user> <id>|-all [-actor A]", help: "forget one or all remembered devices of a user", run: devicesRevoke})
	register("devices check", command{usage: "devices check <user> [-step-up]", help: "present a device token (read from the terminal); prints the rotated one", run: devicesCheck})
}

func devicesList(e *env, args []string) error {
	fs := flag.NewFlagSet("devices list", flag.ContinueOnError)
	actor := fs.String("actor", "", "list as this admin (AdminService, group-admin scope)")
	user, err := userThenFlags(fs, args, "devices list <user> [-actor A]")
	if err != nil {
		return err
	}
	var devs []*pb.RememberedDevice
	if *actor != "" {
		resp, err := e.c.Admin.ListUserRememberedDevices(e.ctx, &pb.ListUserRememberedDevicesRequest{ActorId: *actor, UserId: user})
		if err != nil {
			return err
		}
		devs = resp.GetDevices()
	} else {
		resp, err := e.c.Enrollment.ListRememberedDevices(e.ctx, &pb.ListRememberedDevicesRequest{UserId: user})
		if err != nil {
			return err
		}
		devs = resp.GetDevices()
	}
	if len(devs) == 0 {
		fmt.Fprintln(e.out, "no remembered devices")
		return nil
	}
	fmt.Fprintf(e.out, "%-36s  %-16s  %-16s  %-16s  %-15s  %s\n", "ID", "CREATED", "LAST USED", "EXPIRES", "LAST IP", "LABEL")
	for _, d := range devs {
		fmt.Fprintf(e.out, "%-36s  %-16s  %-16s  %-16s  %-15s  %s\n", d.GetId(), when(d.GetCreatedAt()), when(d.GetLastUsedAt()),
			when(d.GetExpiresAt()), orDash(d.GetLastIp()), orDash(d.GetLabel()))
	}
	return nil
}

func devicesRevoke(e *env, args []string) error {
	const use = "devices revoke <user> <id>|-all [-actor A]"
	fs := flag.NewFlagSet("devices revoke", flag.ContinueOnError)
	actor := fs.String("actor", "", "revoke as this admin (AdminService, group-admin scope)")
	all := fs.Bool("all", false, "every remembered device of the user")
	if len(args) == 0 || args[0] == "" || args[0][0] == '-' {
		return fmt.Errorf("usage: authctl %s", use)
	}
	user, rest := args[0], args[1:]
	id := ""
	if len(rest) > 0 && rest[0] != "" && rest[0][0] != '-' {
		id, rest = rest[0], rest[1:]
	}
	if err := fs.Parse(rest); err != nil {
		return err
	}
	if (id == "") == !*all {
		return fmt.Errorf("name one device id or -all: usage: authctl %s", use)
	}
	var n uint32
	switch {
	case *actor != "":
		resp, err := e.c.Admin.RevokeUserRememberedDevices(e.ctx, &pb.RevokeUserRememberedDevicesRequest{ActorId: *actor, UserId: user, DeviceId: id})
		if err != nil {
			return err
		}
		n = resp.GetRevoked()
	case *all:
		resp, err := e.c.Enrollment.RevokeAllRememberedDevices(e.ctx, &pb.RevokeAllRememberedDevicesRequest{UserId: user})
		if err != nil {
			return err
		}
		n = resp.GetRevoked()
	default:
		if _, err := e.c.Enrollment.RevokeRememberedDevice(e.ctx, &pb.RevokeRememberedDeviceRequest{UserId: user, DeviceId: id}); err != nil {
			return err
		}
		n = 1
	}
	fmt.Fprintf(e.out, "revoked %d\n", n)
	return nil
}

func devicesCheck(e *env, args []string) error {
	fs := flag.NewFlagSet("devices check", flag.ContinueOnError)
	stepUp := fs.Bool("step-up", false, "ask as for a step-up (never satisfied by a remembered device)")
	user, err := userThenFlags(fs, args, "devices check <user> [-step-up]")
	if err != nil {
		return err
	}
	token, err := e.prompt("Device token: ")
	if err != nil {
		return err
	}
	resp, err := e.c.Challenges.CheckRememberedDevice(e.ctx, &pb.CheckRememberedDeviceRequest{UserId: user, DeviceToken: token,
		Context: &pb.ClientContext{Client: "authctl"}, StepUp: *stepUp})
	if err != nil {
		return err
	}
	switch resp.GetResult() {
	case pb.RememberedResult_REMEMBERED_RESULT_REMEMBERED:
		fmt.Fprintf(e.out, "Remembered: device %s; keep the rotated token (until %s):\n  %s\n", resp.GetDeviceId(), when(resp.GetDeviceTokenExpiresAt()), resp.GetDeviceToken())
	case pb.RememberedResult_REMEMBERED_RESULT_THROTTLED:
		return fmt.Errorf("throttled: try again in %s", resp.GetRetryAfter().AsDuration())
	default:
		fmt.Fprintln(e.out, "Not remembered:", resp.GetResult().String())
	}
	return nil
}
