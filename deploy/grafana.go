package deploy

import (
	_ "embed" // the dashboard
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
)

//go:embed grafana/dashboards/kaudit.json
var dashboardJSON []byte

// GrafanaQuery is one SQL query of the provisioned Grafana dashboard: a
// panel's target or a query variable's query, as written (macros and
// variables unexpanded).
type GrafanaQuery struct {
	// Panel is the panel's title, or "variable NAME".
	Panel string
	// Type is the panel type (stat, table, timeseries) or "variable".
	Type  string
	RefID string
	SQL   string
}

// GrafanaQueries returns every SQL query of deploy/grafana/dashboards/kaudit.json.
func GrafanaQueries() ([]GrafanaQuery, error) {
	var d struct {
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				RefID  string `json:"refId"`
				RawSQL string `json:"rawSql"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(dashboardJSON, &d); err != nil {
		return nil, fmt.Errorf("deploy: dashboards/kaudit.json: %w", err)
	}
	var out []GrafanaQuery
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		sql, ok := v.Query.(string)
		if !ok {
			return nil, fmt.Errorf("deploy: variable %s: query %v is not SQL text", v.Name, v.Query)
		}
		out = append(out, GrafanaQuery{Panel: "variable " + v.Name, Type: "variable", SQL: sql})
	}
	for _, p := range d.Panels {
		for _, t := range p.Targets {
			out = append(out, GrafanaQuery{Panel: p.Title, Type: p.Type, RefID: t.RefID, SQL: t.RawSQL})
		}
	}
	return out, nil
}

// ExpandGrafana does what Grafana and the ClickHouse plugin do to a query
// before it reaches ClickHouse: $__conditionalAll (the plugin's front end:
// the condition, or 1=1 when the variable is All, given as ""), the
// template variables (database, and the values of vars, single-quoted),
// then the plugin's time macros ($__timeFilter, $__fromTime, $__toTime,
// $__interval_s as 60, as in pkg/macros of grafana-clickhouse-datasource).
func ExpandGrafana(sql, db string, vars map[string]string, from, to time.Time) (string, error) {
	const macro = "$__conditionalAll("
	for {
		i := strings.LastIndex(sql, macro)
		if i < 0 {
			break
		}
		args, end, err := macroArgs(sql, i+len(macro))
		if err != nil {
			return "", err
		}
		if len(args) != 2 {
			return "", fmt.Errorf("deploy: $__conditionalAll with %d arguments in %q", len(args), sql)
		}
		name := strings.Trim(strings.TrimPrefix(strings.TrimSpace(args[1]), "$"), "{}")
		val, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("deploy: $__conditionalAll on unknown variable %q", name)
		}
		repl := args[0]
		if val == "" {
			repl = "1=1"
		}
		sql = sql[:i] + repl + sql[end:]
	}
	quote := func(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
	pairs := []string{"${database}", db}
	for name, val := range vars {
		pairs = append(pairs, "${"+name+":singlequote}", quote(val), "$"+name, quote(val))
	}
	sql = strings.NewReplacer(pairs...).Replace(sql)
	dt := func(t time.Time) string { return fmt.Sprintf("toDateTime(%d)", t.Unix()) }
	sql = timeFilterRe.ReplaceAllString(sql, "$1 >= "+dt(from)+" AND $1 <= "+dt(to))
	sql = strings.NewReplacer("$__fromTime", dt(from), "$__toTime", dt(to), "$__interval_s", "60").Replace(sql)
	if strings.Contains(sql, "$") {
		return "", fmt.Errorf("deploy: unexpanded macro or variable left in:\n%s", sql)
	}
	return sql, nil
}

var timeFilterRe = regexp.MustCompile(`\$__timeFilter\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)`)

// macroArgs splits the arguments of a macro call whose "(" ends at start,
// at top-level commas, and returns them and the index after the ")".
func macroArgs(s string, start int) ([]string, int, error) {
	depth, last := 0, start
	var args []string
	inStr := false
	for i := start; i < len(s); i++ {
		switch c := s[i]; {
		case inStr:
			if c == '\\' {
				i++
			} else if c == '\'' {
				inStr = false
			}
		case c == '\'':
			inStr = true
		case c == '(':
			depth++
		case c == ')' && depth > 0:
			depth--
		case c == ')':
			return append(args, s[last:i]), i + 1, nil
		case c == ',' && depth == 0:
			args = append(args, s[last:i])
			last = i + 1
		}
	}
	return nil, 0, fmt.Errorf("deploy: unterminated macro call in %q", s)
}
