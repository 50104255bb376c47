// Command authzd is the authzd server and its operator tools.
//
//	authzd serve --config FILE
//	authzd check --addr HOST:PORT --api-key KEY --action ACTION [--resource TYPE:ID] [--context JSON]
//	authzd policy test DIR...
//	authzd policy eval --policy DIR --input FILE [--query data.authzd.decision]
//	authzd apikey create|list|revoke ...
//	authzd cache flush [--principal ID]
//	authzd awsiam add-key|encrypt-secret|proof ...
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `authzd: a central authorization decision service

Usage:
  authzd serve   --config FILE                 start the server
  authzd check   [flags]                       ask a running server for a decision (exit 0 allowed, 1 denied, 2 error)
  authzd policy  test DIR...                   run Rego unit tests (exit 1 on failure)
  authzd policy  eval --policy DIR --input FILE   evaluate one input offline
  authzd apikey  create|list|revoke [flags]    manage API keys (hashes only are stored)
  authzd cache   flush [--principal ID]        flush cached decisions and identities on a server
  authzd awsiam  add-key|encrypt-secret|proof  manage SigV4 service keys, make an STS proof

Run "authzd COMMAND -h" for a command's flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes a command and returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stderr)
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "policy":
		return cmdPolicy(args[1:], stdout, stderr)
	case "apikey":
		return cmdAPIKey(args[1:], stdout, stderr)
	case "cache":
		return cmdCache(args[1:], stdout, stderr)
	case "awsiam":
		return cmdAWSIAM(args[1:], os.Stdin, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "authzd: unknown command %q\n\n%s", args[0], usage)
	return 2
}
