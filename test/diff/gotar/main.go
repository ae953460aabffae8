// gotar — the Go side of kcmdr's tarball differential test (test/diff/t_gotar.sh): the standard
// library's archive/tar and compress/gzip, which is how Velero reads and writes a backup tarball.
//
//	gotar read FILE    print every entry of a gzip tar as one JSON line:
//	                   {"name","type","mode","size","sha256"[,"probe"]}
//	gotar write FILE   write a tarball the way Velero's backup does (metadata/version first, each
//	                   object as encoding/json prints it, at its plain and -preferredversion path,
//	                   regular files with mode 0755) and print what it wrote:
//	                   {"name","size","sha256"[,"probe"]}
//
// "probe" is the hex of the decoded string at .data.probe when the entry is a JSON object that
// has one: it shows that escapes (\u0000, \u003c) decode to the same bytes on both sides.
package main

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

type line struct {
	Name   string  `json:"name"`
	Type   *string `json:"type,omitempty"`
	Mode   *int64  `json:"mode,omitempty"`
	Size   int64   `json:"size"`
	Sha256 string  `json:"sha256"`
	Probe  *string `json:"probe,omitempty"`
}

func probe(name string, data []byte) *string {
	if !strings.HasSuffix(name, ".json") {
		return nil
	}
	var m map[string]interface{}
	if json.Unmarshal(data, &m) != nil {
		return nil
	}
	d, ok := m["data"].(map[string]interface{})
	if !ok {
		return nil
	}
	s, ok := d["probe"].(string)
	if !ok {
		return nil
	}
	h := hex.EncodeToString([]byte(s))
	return &h
}

func emit(l line) {
	b, err := json.Marshal(l)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gotar:", err)
	os.Exit(1)
}

func read(file string) {
	f, err := os.Open(file)
	if err != nil {
		fail(err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		fail(err)
	}
	tr := tar.NewReader(gz)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			fail(err)
		}
		sum := sha256.Sum256(data)
		t := string([]byte{hdr.Typeflag})
		mode := hdr.Mode
		emit(line{Name: hdr.Name, Type: &t, Mode: &mode, Size: int64(len(data)), Sha256: hex.EncodeToString(sum[:]), Probe: probe(hdr.Name, data)})
	}
	// the rest of the gzip stream must be sound too (CRC, length)
	if _, err := io.Copy(io.Discard, gz); err != nil {
		fail(err)
	}
}

type writer struct {
	tw *tar.Writer
}

// as Velero's getFileForArchive and writeBackupVersion build their headers
func (w *writer) file(name string, data []byte) {
	hdr := &tar.Header{Name: name, Size: int64(len(data)), Typeflag: tar.TypeReg, Mode: 0755, ModTime: time.Now()}
	if err := w.tw.WriteHeader(hdr); err != nil {
		fail(err)
	}
	if _, err := w.tw.Write(data); err != nil {
		fail(err)
	}
	sum := sha256.Sum256(data)
	emit(line{Name: name, Size: int64(len(data)), Sha256: hex.EncodeToString(sum[:]), Probe: probe(name, data)})
}

// as Velero's item backupper: json.Marshal of the unstructured map, plain path then the
// <version>-preferredversion path (archive.GetVersionedItemFilePath)
func (w *writer) object(gr, version, ns, name string, obj map[string]interface{}) {
	b, err := json.Marshal(obj)
	if err != nil {
		fail(err)
	}
	scope := "cluster"
	if ns != "" {
		scope = "namespaces"
	}
	w.file(filepath.Join("resources", gr, "", scope, ns, name+".json"), b)
	w.file(filepath.Join("resources", gr, version+"-preferredversion", scope, ns, name+".json"), b)
}

func write(file string) {
	f, err := os.Create(file)
	if err != nil {
		fail(err)
	}
	gz := gzip.NewWriter(f)
	w := &writer{tw: tar.NewWriter(gz)}
	w.file("metadata/version", []byte("1.1.0\n"))

	long := strings.Repeat("c", 253)
	longNs := strings.Repeat("n", 63)
	w.object("secrets", "v1", "kcm-system", "nul-and-html", map[string]interface{}{
		"apiVersion": "v1", "kind": "Secret",
		"metadata": map[string]interface{}{"name": "nul-and-html", "namespace": "kcm-system"},
		"data":     map[string]interface{}{"probe": "a\x00b <tag> & \u2028 é€😀", "zz": 1.5, "aa": []interface{}{nil, true}},
	})
	w.object("clusterdeployments.k0rdent.mirantis.com", "v1beta1", longNs, long, map[string]interface{}{
		"apiVersion": "k0rdent.mirantis.com/v1beta1", "kind": "ClusterDeployment",
		"metadata": map[string]interface{}{"name": long, "namespace": longNs, "labels": map[string]interface{}{"k0rdent.mirantis.com/component": "kcm"}},
		"data":     map[string]interface{}{"probe": "long name"},
	})
	w.object("clusterroles.rbac.authorization.k8s.io", "v1", "", "système:rôle", map[string]interface{}{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
		"metadata": map[string]interface{}{"name": "système:rôle"},
	})
	big := strings.Repeat("0123456789abcdef", 1<<16)
	w.object("configmaps", "v1", "default", "one-mebibyte", map[string]interface{}{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]interface{}{"name": "one-mebibyte", "namespace": "default"},
		"data":     map[string]interface{}{"big": big},
	})
	if err := w.tw.Close(); err != nil {
		fail(err)
	}
	if err := gz.Close(); err != nil {
		fail(err)
	}
	if err := f.Close(); err != nil {
		fail(err)
	}
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gotar read|write FILE")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "read":
		read(os.Args[2])
	case "write":
		write(os.Args[2])
	default:
		fmt.Fprintln(os.Stderr, "usage: gotar read|write FILE")
		os.Exit(2)
	}
}
