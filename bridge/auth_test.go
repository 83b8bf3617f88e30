package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
)

// bridgeRefused checks that a bridge with these arguments exits non-zero
// without printing ready.
func bridgeRefused(t *testing.T, h *host, url string, args ...string) {
	t.Helper()
	exe, _ := os.Executable()
	cmd := exec.Command(exe, append([]string{"-domain", h.name, "-nats", url, "-import", "authsvc"}, args...)...)
	cmd.Env = append(os.Environ(), "BRIDGE_TEST_AS=bridge")
	out, err := cmd.Output()
	if err == nil || string(out) == "ready\n" {
		t.Fatalf("bridge %v: started (%q, %v), want refused", args, out, err)
	}
}

// authPair runs an exporter and an importer with args against ns and makes
// calls across, after checking that a bridge with bad credentials is refused.
func authPair(t *testing.T, ns *natsServer, url string, good, bad []string) {
	a, b := newHost(t, "auth-a", nil), newHost(t, "auth-b", nil)
	bridgeRefused(t, a, url, bad...)
	goServer(t, b, "authsvc", "b")
	startBridge(t, b, url, append([]string{"-export", "authsvc"}, good...)...)
	startBridge(t, a, url, append([]string{"-import", "authsvc"}, good...)...)
	checkCall(t, a, "authsvc")
}

func TestAuthUserPassword(t *testing.T) {
	ns := startNATS(t, "NATS_USER=bridge", "NATS_PASSWORD=s3cret")
	authPair(t, ns, ns.url(), []string{"-user", "bridge", "-password", "s3cret"},
		[]string{"-user", "bridge", "-password", "wrong"})
}

func TestAuthToken(t *testing.T) {
	ns := startNATS(t, "NATS_TOKEN=tok-123")
	authPair(t, ns, ns.url(), []string{"-token", "tok-123"}, []string{"-token", "tok-999"})
}

func TestAuthNkey(t *testing.T) {
	writeSeed := func(kp nkeys.KeyPair, name string) (string, string) {
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		path := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(path, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		return path, pub
	}
	good, _ := nkeys.CreateUser()
	other, _ := nkeys.CreateUser()
	goodSeed, pub := writeSeed(good, "good.nk")
	otherSeed, _ := writeSeed(other, "other.nk")
	ns := startNATS(t, "NATS_NKEY="+pub)
	authPair(t, ns, ns.url(), []string{"-nkey", goodSeed}, []string{"-nkey", otherSeed})
}

// TestTLS: a NATS server with a certificate of a test CA; bridges that trust
// that CA (-tls-ca) work, a bridge that does not is refused.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bridge test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srvTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caTmpl, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ca := write("ca.pem", "CERTIFICATE", caDER)
	cert := write("server.pem", "CERTIFICATE", srvDER)
	keyDER, _ := x509.MarshalECPrivateKey(srvKey)
	key := write("server-key.pem", "EC PRIVATE KEY", keyDER)
	ns := startNATS(t, "NATS_TLS_CERT="+cert, "NATS_TLS_KEY="+key)
	url := "tls://127.0.0.1:" + strconv.Itoa(ns.port)
	authPair(t, ns, url, []string{"-tls-ca", ca}, nil)
}
