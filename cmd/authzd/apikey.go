package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/authzd/authzd/identity/apikey"
	"github.com/authzd/authzd/service"
)

// keyFileFlags finds the key file from --file or from the config.
type keyFileFlags struct{ file, config string }

func (k *keyFileFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.file, "file", "", "API key file (default: identity.api_keys.file of --config)")
	fs.StringVar(&k.config, "config", envOr("AUTHZD_CONFIG", ""), "config file to read identity.api_keys.file from (env AUTHZD_CONFIG)")
}

func (k *keyFileFlags) path() (string, error) {
	if k.file != "" {
		return k.file, nil
	}
	if k.config == "" {
		return "", fmt.Errorf("give --file or --config")
	}
	cfg, err := service.LoadConfig(k.config)
	if err != nil {
		return "", err
	}
	if cfg.Identity.APIKeys.File == "" {
		return "", fmt.Errorf("%s: identity.api_keys.file is not set", k.config)
	}
	return cfg.Identity.APIKeys.File, nil
}

func cmdAPIKey(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "authzd apikey: want a subcommand: create, list or revoke")
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("apikey "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var kf keyFileFlags
	kf.register(fs)
	switch sub {
	case "create":
		owner := fs.String("owner", "", "principal id the key authenticates as (required)")
		scopes := fs.String("scopes", "", "comma-separated scopes")
		ttl := fs.Duration("ttl", 0, "lifetime, e.g. 2160h; 0 never expires")
		desc := fs.String("description", "", "free-form note")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		path, err := kf.path()
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey create: %v\n", err)
			return 2
		}
		key, rec, err := apikey.Create(path, *owner, splitList(*scopes), *ttl, *desc)
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey create: %v\n", err)
			return 2
		}
		fmt.Fprintf(stderr, "Created key %s for %s. This is the only time the key is shown; store it now.\n", rec.ID, rec.Owner)
		fmt.Fprintln(stdout, key)
		return 0
	case "list":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		path, err := kf.path()
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey list: %v\n", err)
			return 2
		}
		f, err := apikey.ReadFile(path)
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey list: %v\n", err)
			return 2
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tOWNER\tSCOPES\tCREATED\tEXPIRES\tSTATUS")
		now := time.Now()
		for _, r := range f.Keys {
			status := "active"
			switch {
			case !r.RevokedAt.IsZero():
				status = "revoked " + r.RevokedAt.Format(time.RFC3339)
			case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
				status = "expired"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Owner, strings.Join(r.Scopes, ","),
				r.CreatedAt.Format(time.RFC3339), fmtTime(r.ExpiresAt), status)
		}
		tw.Flush()
		return 0
	case "revoke":
		if err := fs.Parse(args); err != nil {
			return 2
		}
		if fs.NArg() != 1 {
			fmt.Fprintln(stderr, "authzd apikey revoke: give exactly one key id")
			return 2
		}
		path, err := kf.path()
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey revoke: %v\n", err)
			return 2
		}
		rec, err := apikey.Revoke(path, fs.Arg(0))
		if err != nil {
			fmt.Fprintf(stderr, "authzd apikey revoke: %v\n", err)
			return 2
		}
		fmt.Fprintf(stdout, "revoked %s (owner %s)\n", rec.ID, rec.Owner)
		return 0
	}
	fmt.Fprintf(stderr, "authzd apikey: unknown subcommand %q (want create, list or revoke)\n", sub)
	return 2
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return t.Format(time.RFC3339)
}
