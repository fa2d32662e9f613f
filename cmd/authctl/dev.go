package main

import (
	"errors"
	"flag"
	"fmt"

	pb "github.com/twofactor/twofactor/proto/twofactor/v1"
)

func init() {
	register("dev telegram-start", command{
		usage: "dev telegram-start <link-or-token> [-chat ID]",
		help:  "development: press Start in a simulated Telegram chat (embedded authd, Telegram to the outbox)",
		run:   devTelegramStart,
	})
}

func devTelegramStart(e *env, args []string) error {
	fs := flag.NewFlagSet("dev telegram-start", flag.ContinueOnError)
	chat := fs.String("chat", "", "the simulated chat's id (an integer; default 100000001)")
	pos, err := parseFlags(fs, args) // a token may begin with "-"
	if err != nil || len(pos) != 1 {
		return errors.Join(err, fmt.Errorf("usage: authctl dev telegram-start <link-or-token> [-chat ID]"))
	}
	link := pos[0]
	r, err := e.c.Dev.SimulateTelegramStart(e.ctx, &pb.SimulateTelegramStartRequest{Link: link, ChatId: *chat})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Pressed Start in chat %s: authd binds it in a moment; the bot's answer and the codes to this chat are in the outbox (To: %s).\n",
		r.GetChatId(), r.GetChatId())
	return nil
}
