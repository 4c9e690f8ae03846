package labs

import (
	"context"
	"fmt"
	"strings"

	"github.com/parley-edu/parley/labs/scenario"
)

// A say is one scripted line: From sends Text (a chat line or a command
// such as /msg), and To, when set, waits until it has received a line that
// contains Want (Text itself when Want is empty; for a /msg, the message).
type say struct {
	From, Text string
	To, Want   string
}

// chat is a line that every other bot in names must receive.
func chat(from, text string) say { return say{From: from, Text: text} }

// private is a /msg from one bot to another.
func private(from, to, text string) say {
	return say{From: from, Text: "/msg " + to + " " + text, To: to, Want: text}
}

// A cast is the bots of one scenario, by name, in the order they joined.
type cast struct {
	bots  map[string]*scenario.Bot
	order []string
}

// play runs lines in a started scenario, joining each speaker (and each
// recipient) on first use in the order they appear. When a line has no To,
// every other joined bot waits for it. c keeps the bots between calls; nil
// starts a new cast.
func play(ctx context.Context, sc *scenario.Scenario, c *cast, lines []say) error {
	if c == nil {
		c = &cast{}
	}
	if c.bots == nil {
		c.bots = map[string]*scenario.Bot{}
	}
	bots := c.bots
	join := func(name string) (*scenario.Bot, error) {
		if b, ok := bots[name]; ok {
			return b, nil
		}
		b, err := sc.Join(name)
		if err != nil {
			return nil, fmt.Errorf("labs: bot %s cannot join: %w", name, err)
		}
		bots[name] = b
		c.order = append(c.order, name)
		return b, nil
	}
	for _, l := range lines {
		for _, n := range []string{l.From, l.To} {
			if n != "" {
				if _, err := join(n); err != nil {
					return err
				}
			}
		}
	}
	for _, l := range lines {
		want := l.Want
		if want == "" {
			want = l.Text
		}
		waiters := []string{l.To}
		if l.To == "" {
			waiters = c.order
		}
		// A line may repeat an earlier one: wait for one more copy than
		// each waiter has already.
		before := map[string]int{}
		for _, n := range waiters {
			for _, s := range bots[n].Lines() {
				if strings.Contains(s, want) {
					before[n]++
				}
			}
		}
		if err := bots[l.From].Say(l.Text); err != nil {
			return err
		}
		for _, n := range waiters {
			if n == l.From {
				continue
			}
			seen := 0
			if _, err := bots[n].WaitFor(ctx, fmt.Sprintf("%q", want), func(s string) bool {
				if strings.Contains(s, want) {
					seen++
				}
				return seen > before[n]
			}); err != nil {
				return err
			}
		}
	}
	return nil
}

// recordTalk runs a tapped room with opts, plays lines and writes the
// capture to opts.CapturePath when the bots have left.
func recordTalk(ctx context.Context, opts scenario.Options, lines []say) error {
	opts.Tap = true
	sc, err := scenario.Start(ctx, opts)
	if err != nil {
		return err
	}
	perr := play(ctx, sc, nil, lines)
	cerr := sc.Close()
	if perr != nil {
		return perr
	}
	return cerr
}
