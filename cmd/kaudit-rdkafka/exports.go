//go:build rdkafka

package main

/*
#cgo LDFLAGS: -lrdkafka
#include <stdlib.h>
#include "plugin.h"
*/
import "C"

import (
	"fmt"
	"runtime/cgo"
	"strings"
	"time"
	"unsafe"
)

// The functions below are called by the C half (plugin.c). Each recovers
// its own panics: a panic must never unwind into librdkafka.

// lookup returns the instance behind a handle (nil for 0; cgo.Handle.Value
// panics on a stale handle, which the callers recover).
func lookup(h C.uintptr_t) *instance {
	if h == 0 {
		return nil
	}
	in, _ := cgo.Handle(h).Value().(*instance)
	return in
}

//export kauditNewInstance
func kauditNewInstance() (h C.uintptr_t) {
	defer func() {
		if recover() != nil {
			h = 0
		}
	}()
	return C.uintptr_t(cgo.NewHandle(&instance{}))
}

//export kauditConfSet
func kauditConfSet(h C.uintptr_t, name, val *C.char, errstr *C.char, size C.size_t) (res C.int) {
	defer func() {
		if v := recover(); v != nil {
			setErrstr(errstr, size, fmt.Sprintf("kaudit: internal error setting %s: %v", C.GoString(name), v))
			res = 1
		}
	}()
	in := lookup(h)
	n := C.GoString(name)
	if in == nil {
		setErrstr(errstr, size, "kaudit: "+n+": plugin instance missing")
		return 1
	}
	v := ""
	if val != nil {
		v = C.GoString(val)
	}
	if err := in.confSet(strings.TrimPrefix(n, "audit."), v); err != nil {
		setErrstr(errstr, size, fmt.Sprintf("kaudit: %s: %v", n, err))
		return 1
	}
	return 0
}

func setErrstr(errstr *C.char, size C.size_t, msg string) {
	if errstr == nil || size == 0 {
		return
	}
	cs := C.CString(msg)
	C.kaudit_copy_errstr(errstr, size, cs)
	C.free(unsafe.Pointer(cs))
}

//export kauditConfDestroy
func kauditConfDestroy(h C.uintptr_t) {
	defer func() { _ = recover() }()
	if in := lookup(h); in != nil {
		in.confDestroy()
	}
	cgo.Handle(h).Delete()
}

// confGet reads a property of the client's configuration ("" if unset).
func confGet(conf *C.rd_kafka_conf_t, name string) string {
	cn := C.CString(name)
	defer C.free(unsafe.Pointer(cn))
	v := C.kaudit_conf_get(conf, cn)
	if v == nil {
		return ""
	}
	defer C.free(unsafe.Pointer(v))
	return C.GoString(v)
}

//export kauditOnNew
func kauditOnNew(ic *C.kaudit_ic, conf *C.rd_kafka_conf_t) {
	var c *client
	defer func() { c.recovered(recover()) }()
	in := lookup(ic.handle)
	if in == nil {
		return
	}
	c = in.onNew(clientProps{
		clientID:     confGet(conf, "client.id"),
		groupID:      confGet(conf, "group.id"),
		brokers:      confGet(conf, "bootstrap.servers"),
		protocol:     confGet(conf, "security.protocol"),
		mechanism:    confGet(conf, "sasl.mechanisms"),
		username:     confGet(conf, "sasl.username"),
		password:     confGet(conf, "sasl.password"),
		caFile:       confGet(conf, "ssl.ca.location"),
		certFile:     confGet(conf, "ssl.certificate.location"),
		keyFile:      confGet(conf, "ssl.key.location"),
		endpointAlgo: confGet(conf, "ssl.endpoint.identification.algorithm"),
		verifyCerts:  confGet(conf, "enable.ssl.certificate.verification"),
	})
	ct := C.CString(c.cfg.topic)
	C.kaudit_set_skip_topic(ic, ct)
	C.free(unsafe.Pointer(ct))
	if c.cfg.wait > 0 {
		ic.wait_ms = C.int(c.cfg.wait.Milliseconds())
	}
	if c.group != "" {
		ic.audit_consume = 1
	}
	ic.ring = c.ring // last: the callbacks audit from here on
}

//export kauditOnDestroy
func kauditOnDestroy(h C.uintptr_t, name *C.char) {
	var c *client
	defer func() { c.recovered(recover()) }()
	in := lookup(h)
	if in == nil {
		return
	}
	c = in.cl.Load()
	in.onDestroy(C.GoString(name))
}

//export kauditSlow
func kauditSlow(h C.uintptr_t, m *C.kaudit_msg) {
	var c *client
	defer func() { c.recovered(recover()) }()
	in := lookup(h)
	if in == nil {
		return
	}
	if c = in.cl.Load(); c == nil || c.em == nil {
		return
	}
	id := C.GoStringN((*C.char)(m.id), C.int(m.id_len))
	topic := C.GoStringN(m.topic, C.int(m.topic_len))
	var wait time.Duration
	if m.rec.kind == C.KAUDIT_CONSUME {
		wait = c.cfg.wait
	}
	c.slow(&m.rec, id, topic, wait)
}
