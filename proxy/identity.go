package proxy

import (
	"bytes"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"strings"
)

// Anonymous is the principal of a connection that neither authenticated
// with SASL nor presented a client certificate to the proxy.
const Anonymous = "User:ANONYMOUS"

// saslUser returns the user name a client claims in its first SASL token
// for mechanism, or "" if it cannot tell. It reads only the name: a PLAIN
// password is skipped and never kept.
//
//   - PLAIN: "authzid NUL authcid NUL password"; the authorization id if
//     set (Kafka requires it to equal the authentication id), else the
//     authentication id.
//   - SCRAM-SHA-256/512: the client-first message "gs2-header,n=user,r=...";
//     "=2C" and "=3D" are unescaped.
//   - OAUTHBEARER: the "sub" claim of the bearer token (unverified: the
//     broker verifies it; the proxy only names the principal).
func saslUser(mechanism string, token []byte) string {
	switch strings.ToUpper(mechanism) {
	case "PLAIN":
		parts := bytes.SplitN(token, []byte{0}, 3)
		if len(parts) != 3 {
			return ""
		}
		if len(parts[0]) > 0 {
			return string(parts[0])
		}
		return string(parts[1])
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		return scramUser(string(token))
	case "OAUTHBEARER":
		return oauthSubject(string(token))
	}
	return ""
}

// saslSteps is how many successful SaslAuthenticate round trips complete
// authentication with mechanism.
func saslSteps(mechanism string) int {
	if strings.HasPrefix(strings.ToUpper(mechanism), "SCRAM-") {
		return 2
	}
	return 1
}

func scramUser(first string) string {
	// gs2-header: "n,," or "y,," or "p=...,," optionally with "a=authzid".
	i := strings.Index(first, ",")
	if i < 0 {
		return ""
	}
	j := strings.Index(first[i+1:], ",")
	if j < 0 {
		return ""
	}
	authzid := first[i+1 : i+1+j]
	rest := first[i+1+j+1:]
	for _, attr := range strings.Split(rest, ",") {
		if strings.HasPrefix(attr, "n=") {
			return scramUnescape(attr[2:])
		}
	}
	if strings.HasPrefix(authzid, "a=") {
		return scramUnescape(authzid[2:])
	}
	return ""
}

func scramUnescape(s string) string {
	return strings.NewReplacer("=2C", ",", "=3D", "=").Replace(s)
}

func oauthSubject(msg string) string {
	// "n,,\x01auth=Bearer <jwt>\x01\x01"
	for _, kv := range strings.Split(msg, "\x01") {
		v, ok := strings.CutPrefix(kv, "auth=Bearer ")
		if !ok {
			continue
		}
		parts := strings.Split(strings.TrimSpace(v), ".")
		if len(parts) < 2 {
			return ""
		}
		payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
		if err != nil {
			return ""
		}
		var claims struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(payload, &claims) != nil {
			return ""
		}
		return claims.Sub
	}
	return ""
}

// certPrincipal is Kafka's default principal for a TLS client certificate:
// "User:" and the subject's distinguished name.
func certPrincipal(c *x509.Certificate) string {
	return "User:" + c.Subject.String()
}
