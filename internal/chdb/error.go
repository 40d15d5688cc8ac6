package chdb

import (
	"regexp"
	"strconv"
	"strings"
)

// Error is an error the engine reported, e.g. "Code: 60. DB::Exception:
// Unknown table ...".
type Error struct {
	Message string
}

func (e *Error) Error() string { return "chdb: " + strings.TrimSpace(e.Message) }

var codeRe = regexp.MustCompile(`Code: (\d+)\.`)

// Code is the ClickHouse error code in the message, 0 if there is none.
func (e *Error) Code() int {
	if m := codeRe.FindStringSubmatch(e.Message); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n
	}
	return 0
}

// quoteIdent quotes a database or table name with backquotes.
func quoteIdent(name string) string {
	r := strings.NewReplacer(`\`, `\\`, "`", "\\`")
	return "`" + r.Replace(name) + "`"
}
