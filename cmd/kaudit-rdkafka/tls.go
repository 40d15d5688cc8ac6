//go:build rdkafka

package main

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"os"
	"strings"

	"github.com/kaudit/kaudit/internal/kafkaconn"
)

// security is the audit producer's connection security
// (security.protocol, sasl.*, ssl.*), which kafkaconn maps to franz-go
// options.
func (s *settings) security() kafkaconn.Security {
	return kafkaconn.Security{
		Protocol:     s.protocol,
		Mechanism:    s.mechanism,
		Username:     s.username,
		Password:     s.password,
		CAFile:       s.caFile,
		CertFile:     s.certFile,
		KeyFile:      s.keyFile,
		SkipVerify:   s.verifyCerts != nil && !*s.verifyCerts,
		SkipHostname: s.verifyHostname != nil && !*s.verifyHostname,
	}
}

// tlsConfig is the TLS configuration of an SSL protocol (nil otherwise).
func (s *settings) tlsConfig() (*tls.Config, error) { return s.security().TLS() }

// checkPEM fails unless file holds a PEM block whose type ends in typ.
func checkPEM(file, typ string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return fmt.Errorf("no PEM %s in %s", typ, file)
		}
		if strings.HasSuffix(blk.Type, typ) {
			if strings.Contains(blk.Type, "ENCRYPTED") || blk.Headers["Proc-Type"] != "" {
				return fmt.Errorf("%s: encrypted private keys are not supported", file)
			}
			return nil
		}
	}
}
