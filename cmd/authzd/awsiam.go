package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/authzd/authzd/identity/awsiam"
	"github.com/authzd/authzd/service"
)

const awsiamUsage = `authzd awsiam: AWS IAM identities

  authzd awsiam add-key --arn ARN [--config FILE | --file KEYS_FILE] [--key-env VAR] [--access-key-id ID]
      add a service key to the SigV4 keys file. Without --access-key-id a new key is
      generated and its secret printed once; with it, the secret is read from stdin.
  authzd awsiam encrypt-secret --access-key-id ID [--config FILE] [--key-env VAR]
      encrypt a secret (read from stdin) for a hand-written keys file entry.
  authzd awsiam proof --server-id ID [--endpoint URL] [--region REGION] [--server-id-header NAME]
      sign an sts:GetCallerIdentity proof with AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
      AWS_SESSION_TOKEN from the environment, and print it as the X-Authzd-Aws-Proof header value.

The encryption key comes from sigv4.encryption_key of --config, or else from the
environment variable named by --key-env (default AUTHZD_AWS_KEYS_KEY); never from a flag.
`

func cmdAWSIAM(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, awsiamUsage)
		return 2
	}
	sub, args := args[0], args[1:]
	fs := flag.NewFlagSet("awsiam "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fail := func(err error) int {
		fmt.Fprintf(stderr, "authzd awsiam %s: %v\n", sub, err)
		return 1
	}
	switch sub {
	case "add-key", "encrypt-secret":
		arn := fs.String("arn", "", "the principal's ARN, e.g. arn:aws:iam::123456789012:user/services/orders (add-key)")
		akid := fs.String("access-key-id", "", "use this access key id; the secret is read from stdin")
		file := fs.String("file", "", "keys file (default: identity.aws_iam.sigv4.keys_file of --config)")
		config := fs.String("config", envOr("AUTHZD_CONFIG", ""), "config file (env AUTHZD_CONFIG)")
		keyEnv := fs.String("key-env", "AUTHZD_AWS_KEYS_KEY", "environment variable holding the encryption key")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		encKey, keysFile, err := awsKeySettings(*config, *keyEnv, *file)
		if err != nil {
			return fail(err)
		}
		if sub == "encrypt-secret" {
			if *akid == "" {
				return fail(fmt.Errorf("--access-key-id is required"))
			}
			secret, err := readSecret(stdin)
			if err != nil {
				return fail(err)
			}
			sealed, err := awsiam.EncryptSecret(encKey, *akid, secret)
			if err != nil {
				return fail(err)
			}
			fmt.Fprintln(stdout, sealed)
			return 0
		}
		if *arn == "" {
			return fail(fmt.Errorf("--arn is required"))
		}
		if keysFile == "" {
			return fail(fmt.Errorf("give --file or --config with identity.aws_iam.sigv4.keys_file"))
		}
		var entry awsiam.KeyEntry
		var secret string
		if *akid == "" {
			entry, secret, err = awsiam.NewKeyEntry(encKey, *arn)
		} else {
			var s string
			if s, err = readSecret(stdin); err == nil {
				var sealed string
				if sealed, err = awsiam.EncryptSecret(encKey, *akid, s); err == nil {
					entry = awsiam.KeyEntry{AccessKeyID: *akid, Secret: sealed, ARN: *arn}
					_, err = awsiam.ParseCaller(*arn, "", "")
				}
			}
		}
		if err != nil {
			return fail(err)
		}
		if err := awsiam.AppendKeyEntry(keysFile, entry); err != nil {
			return fail(err)
		}
		fmt.Fprintf(stdout, "access_key_id: %s\n", entry.AccessKeyID)
		if secret != "" {
			fmt.Fprintf(stdout, "secret_access_key: %s\n(shown once: give it to the service now)\n", secret)
		}
		return 0
	case "proof":
		serverID := fs.String("server-id", "", "the server ID of the authzd deployment (sts.server_id)")
		endpoint := fs.String("endpoint", awsiam.DefaultSTSEndpoint, "STS endpoint")
		region := fs.String("region", awsiam.DefaultSTSRegion, "STS signing region")
		header := fs.String("server-id-header", awsiam.DefaultServerIDHeader, "server ID header name")
		if err := fs.Parse(args); err != nil {
			return 2
		}
		creds := aws.Credentials{
			AccessKeyID:     os.Getenv("AWS_ACCESS_KEY_ID"),
			SecretAccessKey: os.Getenv("AWS_SECRET_ACCESS_KEY"),
			SessionToken:    os.Getenv("AWS_SESSION_TOKEN"),
		}
		if creds.AccessKeyID == "" || creds.SecretAccessKey == "" {
			return fail(fmt.Errorf("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set"))
		}
		if *serverID == "" {
			return fail(fmt.Errorf("--server-id is required"))
		}
		r, err := awsiam.NewProof(context.Background(), creds, awsiam.ProofOptions{Endpoint: *endpoint, Region: *region, ServerIDHeader: *header, ServerID: *serverID})
		if err != nil {
			return fail(err)
		}
		v, err := awsiam.EncodeProofHeader(r)
		if err != nil {
			return fail(err)
		}
		fmt.Fprintln(stdout, v)
		return 0
	case "-h", "--help", "help":
		fmt.Fprint(stdout, awsiamUsage)
		return 0
	}
	fmt.Fprintf(stderr, "authzd awsiam: unknown subcommand %q\n\n%s", sub, awsiamUsage)
	return 2
}

// awsKeySettings finds the encryption key and keys file: from the config
// when one is given, else from the environment and --file.
func awsKeySettings(config, keyEnv, file string) (encKey, keysFile string, err error) {
	keysFile = file
	if config != "" {
		cfg, err := service.LoadConfig(config)
		if err != nil {
			return "", "", err
		}
		if keysFile == "" {
			keysFile = cfg.Identity.AWSIAM.SigV4.KeysFile
		}
		encKey = string(cfg.Identity.AWSIAM.SigV4.EncryptionKey)
	}
	if encKey == "" {
		encKey = os.Getenv(keyEnv)
	}
	if encKey == "" {
		return "", "", fmt.Errorf("no encryption key: set %s (base64 of 32 bytes) or give --config", keyEnv)
	}
	return encKey, keysFile, nil
}

func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("no secret on stdin")
	}
	return line, nil
}
