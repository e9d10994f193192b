package rules

import (
	"errors"
	"strconv"
	"strings"
)

// ErrUnknownKey and ErrInlineSecret let callers recognise the two mistakes
// that most often come from copying a config between versions or tools,
// with errors.Is, without parsing messages.
var (
	ErrUnknownKey   = errors.New("unknown key")
	ErrInlineSecret = errors.New("secrets are not accepted inline")
)

// Errors is every problem found in one configuration, in file order. Loading
// reports them all at once so an operator fixes a file in one pass instead of
// one error per restart.
type Errors []error

// Error joins the problems one per line, the form check-config prints.
func (e Errors) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

// Unwrap lets errors.Is and errors.As look at each problem.
func (e Errors) Unwrap() []error { return e }

// KeyError is one problem located in the file: the line to edit and the key
// path ("services[0].match[1]"). Line is 0 when the key is not in the file
// (a default, or a value from the environment).
type KeyError struct {
	Line int
	Key  string
	Err  error
}

// Error reads "line N: key: problem"; the line or key is left out when unknown.
func (e *KeyError) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		b.WriteString("line ")
		b.WriteString(strconv.Itoa(e.Line))
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *KeyError) Unwrap() error { return e.Err }
