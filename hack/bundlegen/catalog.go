package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	apimanifests "github.com/operator-framework/api/pkg/manifests"
	"github.com/operator-framework/operator-registry/alpha/declcfg"
	"github.com/operator-framework/operator-registry/alpha/property"
)

// catalogFile is the package's file-based catalog, one YAML stream: olm.package, olm.channel and
// olm.bundle blobs.
const catalogFile = "catalog.yaml"

// writeCatalog adds the bundle to the package's file-based catalog in dir, creating it if needed.
// Running it again for the same version replaces that version's bundle and channel entries; the
// other versions stay, so the catalog accumulates releases as the bundle images do. The olm.bundle
// blob carries what `opm render` would derive from the bundle image (package, provided APIs, CSV
// metadata), so OLM can resolve and display it without pulling the image.
func writeCatalog(dir string, b *bundle, opts Options) error {
	cfg := &declcfg.DeclarativeConfig{}
	if _, err := os.Stat(filepath.Join(dir, catalogFile)); err == nil {
		cfg, err = declcfg.LoadFS(context.Background(), os.DirFS(dir))
		if err != nil {
			return err
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := addToCatalog(cfg, b, opts); err != nil {
		return err
	}
	var buf bytes.Buffer
	if err := declcfg.WriteYAML(*cfg, &buf); err != nil {
		return err
	}
	// The header goes inside the first document: a document holding only a comment is an
	// object without a schema to declcfg, which would refuse the file the next time.
	header := strings.ReplaceAll(generatedHeader, "from config/", "from bundle/; each release adds its bundle")
	data := strings.Replace(buf.String(), "---\n", "---\n"+header, 1)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, catalogFile), []byte(data), 0o644)
}

func addToCatalog(cfg *declcfg.DeclarativeConfig, b *bundle, opts Options) error {
	csv := b.csv
	pkg := declcfg.Package{
		Schema: declcfg.SchemaPackage, Name: opts.Package, DefaultChannel: opts.DefaultChannel,
		Description: csv.Spec.Description,
	}
	if len(csv.Spec.Icon) > 0 {
		icon, err := base64.StdEncoding.DecodeString(csv.Spec.Icon[0].Data)
		if err != nil {
			return err
		}
		pkg.Icon = &declcfg.Icon{Data: icon, MediaType: csv.Spec.Icon[0].MediaType}
	}
	cfg.Packages = slices.DeleteFunc(cfg.Packages, func(p declcfg.Package) bool { return p.Name == opts.Package })
	cfg.Packages = append(cfg.Packages, pkg)

	entry := declcfg.ChannelEntry{Name: csv.Name, Replaces: opts.Replaces, SkipRange: opts.SkipRange}
	for _, name := range opts.Channels {
		i := slices.IndexFunc(cfg.Channels, func(c declcfg.Channel) bool { return c.Package == opts.Package && c.Name == name })
		if i < 0 {
			cfg.Channels = append(cfg.Channels, declcfg.Channel{Schema: declcfg.SchemaChannel, Package: opts.Package, Name: name})
			i = len(cfg.Channels) - 1
		}
		entries := slices.DeleteFunc(cfg.Channels[i].Entries, func(e declcfg.ChannelEntry) bool { return e.Name == entry.Name })
		entries = append(entries, entry)
		sort.Slice(entries, func(a, b int) bool { return entries[a].Name < entries[b].Name })
		cfg.Channels[i].Entries = entries
	}

	props := []property.Property{property.MustBuildPackage(opts.Package, opts.Version)}
	for _, o := range csv.Spec.CustomResourceDefinitions.Owned {
		_, group, _ := strings.Cut(o.Name, ".")
		props = append(props, property.MustBuildGVK(group, o.Version, o.Kind))
	}
	props = append(props, property.MustBuildCSVMetadata(*csv))
	bundle := declcfg.Bundle{
		Schema: declcfg.SchemaBundle, Name: csv.Name, Package: opts.Package, Image: opts.BundleImage,
		Properties: props,
		RelatedImages: []declcfg.RelatedImage{
			{Name: "", Image: opts.BundleImage},
			{Name: "smi-operator", Image: opts.Image},
		},
	}
	cfg.Bundles = slices.DeleteFunc(cfg.Bundles, func(x declcfg.Bundle) bool { return x.Package == opts.Package && x.Name == csv.Name })
	cfg.Bundles = append(cfg.Bundles, bundle)
	return nil
}

// ValidateCatalog loads the file-based catalog under root as opm does (declcfg, then the model's
// own validation: every channel entry is a bundle of the package, the default channel exists,
// versions and skip ranges parse, ...) and checks that the bundle in bundleDir is in it as its
// annotations say: in every channel it names, with an image tagged v<version>, and providing the
// APIs its CSV owns.
func ValidateCatalog(root, bundleDir string) []string {
	cfg, err := declcfg.LoadFS(context.Background(), os.DirFS(root))
	if err != nil {
		return []string{fmt.Sprintf("loading the catalog: %v", err)}
	}
	m, err := declcfg.ConvertToModel(*cfg)
	if err != nil {
		return []string{fmt.Sprintf("the catalog is inconsistent: %v", err)}
	}
	if err := m.Validate(); err != nil {
		return []string{fmt.Sprintf("the catalog is invalid: %v", err)}
	}
	b, err := apimanifests.GetBundleFromDir(bundleDir)
	if err != nil || b.CSV == nil {
		return []string{fmt.Sprintf("loading the bundle from %s: %v", bundleDir, err)}
	}
	var errs []string
	pkg, ok := m[b.Package]
	if !ok {
		return []string{fmt.Sprintf("the catalog has no package %q", b.Package)}
	}
	if pkg.DefaultChannel == nil || pkg.DefaultChannel.Name != b.DefaultChannel {
		errs = append(errs, fmt.Sprintf("package %s: default channel is not %q as the bundle's annotations say", pkg.Name, b.DefaultChannel))
	}
	version := b.CSV.Spec.Version.String()
	for _, name := range b.Channels {
		ch, ok := pkg.Channels[name]
		if !ok {
			errs = append(errs, fmt.Sprintf("package %s has no channel %q", pkg.Name, name))
			continue
		}
		cb, ok := ch.Bundles[b.CSV.Name]
		if !ok {
			errs = append(errs, fmt.Sprintf("channel %s has no bundle %s", name, b.CSV.Name))
			continue
		}
		if !strings.HasSuffix(cb.Image, ":v"+version) {
			errs = append(errs, fmt.Sprintf("bundle %s in channel %s: image %q is not tagged v%s", cb.Name, name, cb.Image, version))
		}
		if cb.Version.String() != version {
			errs = append(errs, fmt.Sprintf("bundle %s in channel %s: version %s, the CSV says %s", cb.Name, name, cb.Version, version))
		}
		if cb.Replaces != b.CSV.Spec.Replaces {
			errs = append(errs, fmt.Sprintf("bundle %s in channel %s replaces %q, the CSV %q", cb.Name, name, cb.Replaces, b.CSV.Spec.Replaces))
		}
		provided := map[string]bool{}
		for _, p := range cb.PropertiesP.GVKs {
			provided[p.Group+"/"+p.Version+"/"+p.Kind] = true
		}
		for _, o := range b.CSV.Spec.CustomResourceDefinitions.Owned {
			_, group, _ := strings.Cut(o.Name, ".")
			if key := group + "/" + o.Version + "/" + o.Kind; !provided[key] {
				errs = append(errs, fmt.Sprintf("bundle %s in channel %s does not provide %s, which its CSV owns", cb.Name, name, key))
			}
		}
	}
	return errs
}
