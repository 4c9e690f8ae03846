package tui

import (
	"regexp"
	"slices"
	"strings"
)

// The room's lines that the client reads for its state (room.go and
// member.go in package room write them). A member's chat line always
// starts with a name and ": ", never with "* ", so these cannot be
// imitated by other members.
var (
	greetingLine = regexp.MustCompile(`^\* parley room (.+) \(scheme ([a-z0-9-]+)\)$`)
	welcomeLine  = regexp.MustCompile(`^\* welcome, ([A-Za-z0-9_.-]{1,32})\. members: (.*)\. type /help for commands$`)
	joinedLine   = regexp.MustCompile(`^\* ([A-Za-z0-9_.-]{1,32}) joined \(\d+ members?\)$`)
	leftLine     = regexp.MustCompile(`^\* ([A-Za-z0-9_.-]{1,32}) left \(.*\)$`)
	renamedLine  = regexp.MustCompile(`^\* ([A-Za-z0-9_.-]{1,32}) is now known as ([A-Za-z0-9_.-]{1,32})$`)
	listLine     = regexp.MustCompile(`^\* \d+ in .+?: ([A-Za-z0-9_., -]*)$`)
	validName    = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)
)

// Prefixes of lines with a meaning for the client.
const (
	loginFailed = "! login failed"
	byePrefix   = "* bye, "
)

// lineKind is how a line from the room is shown.
type lineKind int

const (
	kindChat    lineKind = iota // "alice: text"
	kindOwn                     // our own chat line, shown as we send it
	kindPrivate                 // "alice (private): text"
	kindNotice                  // "* ..."
	kindError                   // "! ..."
	kindLocal                   // from parley join itself
)

// classify returns how to show a line from the room and the name that
// starts it, if it is a chat line.
func classify(line string) (lineKind, string) {
	switch {
	case strings.HasPrefix(line, "* "):
		return kindNotice, ""
	case strings.HasPrefix(line, "! "):
		return kindError, ""
	}
	name, _, ok := strings.Cut(line, ": ")
	if !ok {
		return kindNotice, ""
	}
	if n, private := strings.CutSuffix(name, " (private)"); private {
		return kindPrivate, n
	}
	return kindChat, name
}

// members is the room's member list as the client last heard it.
type members struct {
	names []string // sorted case-insensitively
}

func (ms *members) set(names []string) {
	ms.names = ms.names[:0]
	for _, n := range names {
		ms.add(n)
	}
}

// add adds name unless it is there already or is not a valid name.
func (ms *members) add(name string) {
	if !validName.MatchString(name) || ms.index(name) >= 0 {
		return
	}
	ms.names = append(ms.names, name)
	slices.SortFunc(ms.names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
}

func (ms *members) remove(name string) {
	if i := ms.index(name); i >= 0 {
		ms.names = slices.Delete(ms.names, i, i+1)
	}
}

func (ms *members) index(name string) int {
	return slices.IndexFunc(ms.names, func(n string) bool { return strings.EqualFold(n, name) })
}

// welcome reads our welcome line: our name and who is in the room.
func welcome(line string) (name string, names []string, ok bool) {
	m := welcomeLine.FindStringSubmatch(line)
	if m == nil {
		return "", nil, false
	}
	return m[1], strings.Split(m[2], ", "), true
}

// apply updates the list from a notice, and our own name when we are the
// one renamed.
func (ms *members) apply(line string, self *string) {
	if m := joinedLine.FindStringSubmatch(line); m != nil {
		ms.add(m[1])
	} else if m := leftLine.FindStringSubmatch(line); m != nil {
		ms.remove(m[1])
	} else if m := renamedLine.FindStringSubmatch(line); m != nil {
		ms.remove(m[1])
		ms.add(m[2])
		if strings.EqualFold(m[1], *self) {
			*self = m[2]
		}
	} else if m := listLine.FindStringSubmatch(line); m != nil {
		ms.set(strings.Split(m[1], ", "))
	}
}
