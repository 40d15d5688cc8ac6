package e2e_test

import (
	"testing"

	"github.com/kaudit/kaudit/internal/testing/chtest"
)

func TestMain(m *testing.M) { chtest.Main(m) }
