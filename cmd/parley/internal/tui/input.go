package tui

import (
	"strings"
)

// commands are the room's commands that Tab completes, with a trailing
// space for those that take an argument.
var commands = []string{"/list", "/msg ", "/nick ", "/whoami", "/quit", "/help", "/history"}

// completions returns what Tab offers for the input value: the commands
// that start with a "/word", or the members whose names start the name
// after "/msg ".
func completions(value string, names []string) []string {
	if rest, ok := cutPrefixFold(value, "/msg "); ok && !strings.Contains(rest, " ") {
		var out []string
		for _, n := range names {
			if _, ok := cutPrefixFold(n, rest); ok {
				out = append(out, value[:len(value)-len(rest)]+n+" ")
			}
		}
		return out
	}
	if !strings.HasPrefix(value, "/") || strings.Contains(value, " ") {
		return nil
	}
	var out []string
	for _, c := range commands {
		if _, ok := cutPrefixFold(c, value); ok {
			out = append(out, c)
		}
	}
	return out
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}

// completer cycles through the completions of one input value: the first
// Tab takes the first, each further Tab the next.
type completer struct {
	options []string
	i       int
}

// next returns the value after one more Tab on value.
func (c *completer) next(value string, names []string) (string, bool) {
	if len(c.options) > 0 && value == c.options[c.i] {
		c.i = (c.i + 1) % len(c.options)
		return c.options[c.i], true
	}
	c.options, c.i = completions(value, names), 0
	if len(c.options) == 0 {
		return value, false
	}
	return c.options[0], true
}

func (c *completer) reset() { c.options = nil }

// maxHistory bounds the lines Up and Down recall.
const maxHistory = 200

// history is what the user sent, for Up and Down. pos is len(lines) while
// the user is editing a new line, whose text is kept in draft.
type history struct {
	lines []string
	pos   int
	draft string
}

func (h *history) add(line string) {
	if n := len(h.lines); n == 0 || h.lines[n-1] != line {
		h.lines = append(h.lines, line)
		if len(h.lines) > maxHistory {
			h.lines = h.lines[len(h.lines)-maxHistory:]
		}
	}
	h.pos, h.draft = len(h.lines), ""
}

// up returns the line before the one shown, keeping current as the draft
// when leaving it.
func (h *history) up(current string) (string, bool) {
	if h.pos == 0 {
		return current, false
	}
	if h.pos == len(h.lines) {
		h.draft = current
	}
	h.pos--
	return h.lines[h.pos], true
}

func (h *history) down() (string, bool) {
	if h.pos >= len(h.lines) {
		return "", false
	}
	h.pos++
	if h.pos == len(h.lines) {
		return h.draft, true
	}
	return h.lines[h.pos], true
}
