package store

// Tables of kaudit-proxy's audit, inside the configured database
// (migrations 000020 and 000021).
const (
	// AdminAuditTable holds one row per resource of each audited request.
	AdminAuditTable = "admin_audit"
	// ClientTrafficTable holds the proxy's per-minute traffic records.
	ClientTrafficTable = "client_traffic_1m"
)
