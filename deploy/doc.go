// Package deploy holds kaudit's deployment assets (Grafana provisioning
// under grafana/; the Dockerfile and docker-compose.yml at the repository
// root), their tests, and, as its only code, GrafanaQueries and
// ExpandGrafana: the dashboard's SQL as Grafana sends it, for the tests
// here and the ClickHouse 18.16/26.x conformance tests (store/conformance). They check, without a Docker
// engine, what would otherwise fail only at `docker compose up`:
//
//   - `docker-compose config` accepts the compose file (docker-compose is
//     installed by scripts/deps.sh, run by `make test`);
//   - the expected services exist, third-party images are the official ones
//     and pinned to a tag;
//   - every kaudit service's command (entrypoint + command) runs with --help
//     appended against freshly built binaries, so each binary, subcommand,
//     flag and KAUDIT_* variable it names exists;
//   - the Dockerfile builds every binary the services run, from cmd/
//     directories that exist, with the Go version of go.mod;
//   - the Grafana service installs the ClickHouse plugin at a pinned
//     version and mounts deploy/grafana/; the provisioning files parse and
//     agree with the compose file (host, port, user, database, password
//     variable); and every SQL query of the dashboard (panels and
//     variables), with the plugin's macros and the variables substituted,
//     runs on a real ClickHouse server (chtest) over a scenario of verdicts
//     and returns the scenario's numbers.
//
// Run them with:
//
//	go test ./deploy/
package deploy
