package proxy

import (
	"reflect"
	"sync"
)

// errorCounts counts the ErrorCode fields of a decoded response, walking
// nested structs and slices of structs (KIP-388's getErrorCounts: every
// error code, 0 included). The walk plan of each response type is built
// once.
func errorCounts(resp any) map[int16]int {
	counts := make(map[int16]int, 2)
	v := reflect.ValueOf(resp)
	if v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return counts
	}
	planFor(v.Type()).walk(v, counts)
	return counts
}

// plan lists, for one struct type, where its error codes and nested
// structs are.
type plan struct {
	codes   []int // indexes of int16 ErrorCode fields
	structs []fieldPlan
	slices  []fieldPlan
}

type fieldPlan struct {
	index int
	plan  *plan
}

var plans sync.Map // reflect.Type -> *plan

func planFor(t reflect.Type) *plan {
	if p, ok := plans.Load(t); ok {
		return p.(*plan)
	}
	p := buildPlan(t, map[reflect.Type]*plan{})
	actual, _ := plans.LoadOrStore(t, p)
	return actual.(*plan)
}

func buildPlan(t reflect.Type, seen map[reflect.Type]*plan) *plan {
	if p, ok := seen[t]; ok {
		return p
	}
	p := &plan{}
	seen[t] = p
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		switch {
		case f.Name == "ErrorCode" && f.Type.Kind() == reflect.Int16:
			p.codes = append(p.codes, i)
		case f.Type.Kind() == reflect.Struct:
			if sub := buildPlan(f.Type, seen); !sub.empty() {
				p.structs = append(p.structs, fieldPlan{i, sub})
			}
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			if sub := buildPlan(f.Type.Elem(), seen); !sub.empty() {
				p.slices = append(p.slices, fieldPlan{i, sub})
			}
		}
	}
	return p
}

func (p *plan) empty() bool { return len(p.codes)+len(p.structs)+len(p.slices) == 0 }

func (p *plan) walk(v reflect.Value, counts map[int16]int) {
	for _, i := range p.codes {
		counts[int16(v.Field(i).Int())]++
	}
	for _, s := range p.structs {
		s.plan.walk(v.Field(s.index), counts)
	}
	for _, s := range p.slices {
		f := v.Field(s.index)
		for j := range f.Len() {
			s.plan.walk(f.Index(j), counts)
		}
	}
}
