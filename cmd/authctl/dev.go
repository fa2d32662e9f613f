package main

import (
	"flag"
	"fmt"
	"strings"

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
	// A token may begin with "-": the first argument is the link unless it is -chat.
	var link string
	if len(args) > 0 && args[0] != "-chat" && !strings.HasPrefix(args[0], "-chat=") && args[0] != "--chat" {
		link, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if link == "" && fs.NArg() == 1 {
		link = fs.Arg(0)
	} else if fs.NArg() != 0 || link == "" {
		return fmt.Errorf("usage: authctl dev telegram-start <link-or-token> [-chat ID]")
	}
	r, err := e.c.Dev.SimulateTelegramStart(e.ctx, &pb.SimulateTelegramStartRequest{Link: link, ChatId: *chat})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.out, "Pressed Start in chat %s: authd binds it in a moment; the bot's answer and the codes to this chat are in the outbox (To: %s).\n",
		r.GetChatId(), r.GetChatId())
	return nil
}
