// Package tap is a small stand-in for github.com/mndrix/tap-go, which Debian does not
// package: the runtime-tools validation suite prints its results with it as TAP 13.
// contrib/oci/build-runtime-tools puts it on the GOPATH (docs/oci.md).
package tap

import (
	"fmt"
	"io"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// T writes one TAP stream.
type T struct {
	nextTestNumber *int // shared with the copies Todo returns
	todo           bool
	// Writer receives the TAP output (os.Stdout by default).
	Writer io.Writer
}

// New returns a TAP writer on standard output.
func New() *T {
	next := 1
	return &T{nextTestNumber: &next, Writer: os.Stdout}
}

func (t *T) printf(format string, a ...interface{}) {
	fmt.Fprintf(t.Writer, format, a...)
}

// Header prints the TAP version line and, for a known count, the plan.
func (t *T) Header(testCount int) {
	t.printf("TAP version 13\n")
	if testCount > 0 {
		t.printf("1..%d\n", testCount)
	}
}

// Ok reports one test: passed when test is true.
func (t *T) Ok(test bool, description string) {
	ok := "ok"
	if !test {
		ok = "not ok"
	}
	directive := ""
	if t.todo {
		directive = " # TODO"
	}
	t.printf("%s %d - %s%s\n", ok, *t.nextTestNumber, description, directive)
	*t.nextTestNumber++
}

// Todo returns a writer whose tests are marked TODO (a failure there is expected).
func (t *T) Todo() *T {
	todo := *t
	todo.todo = true
	return &todo
}

// Pass reports a passed test.
func (t *T) Pass(description string) { t.Ok(true, description) }

// Fail reports a failed test.
func (t *T) Fail(description string) { t.Ok(false, description) }

// Skip reports count tests as skipped, with the reason.
func (t *T) Skip(count int, description string) {
	for i := 0; i < count; i++ {
		t.printf("ok %d # SKIP %s\n", *t.nextTestNumber, description)
		*t.nextTestNumber++
	}
}

// Count is the number of tests reported so far.
func (t *T) Count() int { return *t.nextTestNumber - 1 }

// AutoPlan prints the plan for the tests reported so far.
func (t *T) AutoPlan() { t.printf("1..%d\n", t.Count()) }

// Diagnostic prints a comment, one "# " line per line of message.
func (t *T) Diagnostic(message string) {
	t.printf("# %s\n", strings.ReplaceAll(message, "\n", "\n# "))
}

// Diagnosticf prints a formatted comment.
func (t *T) Diagnosticf(format string, a ...interface{}) {
	t.Diagnostic(fmt.Sprintf(format, a...))
}

// YAML prints message as an indented YAML block after the last test line.
func (t *T) YAML(message interface{}) error {
	out, err := yaml.Marshal(message)
	if err != nil {
		return err
	}
	t.printf("  ---\n")
	for _, line := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		t.printf("  %s\n", line)
	}
	t.printf("  ...\n")
	return nil
}
