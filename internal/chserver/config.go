package chserver

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// serverConfig is what config.xml and users.xml are rendered from.
type serverConfig struct {
	// Root is the XML root element: "yandex" for old servers, "clickhouse"
	// for the releases that renamed it (both accept "yandex" until at least
	// 24.x, but newer ones may not).
	Root     string
	Dir      string
	XMLDir   string // Dir, escaped for XML text
	TCPPort  int
	HTTPPort int
	// Node is set for a cluster node.
	Node *nodeConfig
	// Users are the users besides "default"; writeConfig XML-escapes them.
	Users []User
}

// nodeConfig is a cluster node's part of config.xml, XML-escaped.
type nodeConfig struct {
	InterserverPort int
	ZooKeeperHost   string
	ZooKeeperPort   int
	Macros          []kv
	Clusters        []clusterConfig
}

type kv struct{ K, V string }

type clusterConfig struct {
	Name   string
	Shards [][]hostPort
}

type hostPort struct {
	Host string
	Port int
}

// The config keeps only what a local, single-user server needs: no
// interserver, MySQL, PostgreSQL, gRPC or Prometheus ports (none is opened
// unless configured), no system log tables, small caches, UTC. Keys an old
// server does not know are ignored by it.
var configTemplate = template.Must(template.New("config.xml").Parse(`<?xml version="1.0"?>
<!-- Written by kaudit's chserver; rewritten at every start. -->
<{{.Root}}>
    <logger>
        <level>information</level>
        <log>{{.XMLDir}}/log/clickhouse-server.log</log>
        <errorlog>{{.XMLDir}}/log/clickhouse-server.err.log</errorlog>
        <size>10M</size>
        <count>2</count>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <tcp_port>{{.TCPPort}}</tcp_port>
    <http_port>{{.HTTPPort}}</http_port>
    <path>{{.XMLDir}}/data/</path>
    <tmp_path>{{.XMLDir}}/tmp/</tmp_path>
    <user_files_path>{{.XMLDir}}/user_files/</user_files_path>
    <format_schema_path>{{.XMLDir}}/format_schemas/</format_schema_path>
    <user_scripts_path>{{.XMLDir}}/user_scripts/</user_scripts_path>
    <user_defined_path>{{.XMLDir}}/user_defined/</user_defined_path>
    <access_control_path>{{.XMLDir}}/access/</access_control_path>
    <users_config>{{.XMLDir}}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <max_connections>256</max_connections>
    <max_concurrent_queries>64</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <shutdown_wait_unfinished>3</shutdown_wait_unfinished>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <mlock_executable>false</mlock_executable>
{{- with .Node}}
    <interserver_http_port>{{.InterserverPort}}</interserver_http_port>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <zookeeper>
        <node><host>{{.ZooKeeperHost}}</host><port>{{.ZooKeeperPort}}</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <macros>{{range .Macros}}<{{.K}}>{{.V}}</{{.K}}>{{end}}</macros>
    <remote_servers>
{{- range .Clusters}}
        <{{.Name}}>
{{- range .Shards}}
            <shard>
                <internal_replication>true</internal_replication>
{{- range .}}
                <replica><host>{{.Host}}</host><port>{{.Port}}</port></replica>
{{- end}}
            </shard>
{{- end}}
        </{{.Name}}>
{{- end}}
    </remote_servers>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
{{- end}}
</{{.Root}}>
`))

var usersTemplate = template.Must(template.New("users.xml").Parse(`<?xml version="1.0"?>
<!-- Written by kaudit's chserver; rewritten at every start. -->
<{{.Root}}>
    <profiles>
        <default>
            <max_memory_usage>2000000000</max_memory_usage>
        </default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
{{- range .Users}}
        <{{.Name}}>
            <password>{{.Password}}</password>
            <networks>
                <ip>127.0.0.1</ip>
                <ip>::1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </{{.Name}}>
{{- end}}
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</{{.Root}}>
`))

// writeConfig renders config.xml and users.xml into c.Dir and returns the
// path of config.xml.
func writeConfig(c serverConfig) (string, error) {
	var esc bytes.Buffer
	if err := xml.EscapeText(&esc, []byte(c.Dir)); err != nil {
		return "", fmt.Errorf("chserver: escape %q: %w", c.Dir, err)
	}
	c.XMLDir = esc.String()
	users := make([]User, 0, len(c.Users))
	for _, u := range c.Users {
		if !xmlName.MatchString(u.Name) || u.Name == "default" {
			return "", fmt.Errorf("chserver: user name %q is not a plain name other than default", u.Name)
		}
		var pw bytes.Buffer
		if err := xml.EscapeText(&pw, []byte(u.Password)); err != nil {
			return "", fmt.Errorf("chserver: escape the password of %s: %w", u.Name, err)
		}
		users = append(users, User{Name: u.Name, Password: pw.String()})
	}
	c.Users = users
	for _, sub := range []string{"log", "data", "tmp", "user_files", "format_schemas", "user_scripts", "user_defined", "access"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, sub), 0o755); err != nil {
			return "", fmt.Errorf("chserver: create %s: %w", sub, err)
		}
	}
	for _, f := range []struct {
		name string
		tmpl *template.Template
	}{{"config.xml", configTemplate}, {"users.xml", usersTemplate}} {
		var b bytes.Buffer
		if err := f.tmpl.Execute(&b, c); err != nil {
			return "", fmt.Errorf("chserver: render %s: %w", f.name, err)
		}
		if err := os.WriteFile(filepath.Join(c.Dir, f.name), b.Bytes(), 0o644); err != nil {
			return "", fmt.Errorf("chserver: write %s: %w", f.name, err)
		}
	}
	return filepath.Join(c.Dir, "config.xml"), nil
}
