package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/parley-edu/parley/schemes"
)

// schemesCommand is 'parley schemes': every scheme's properties, as the
// schemes describe themselves.
func schemesCommand() *cli.Command {
	return &cli.Command{
		Name:  "schemes",
		Usage: "list the transport schemes and what each protects, leaks and teaches",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print a JSON array of the schemes' properties"},
			&cli.BoolFlag{Name: "long", Aliases: []string{"l"}, Usage: "also print what each scheme leaks, its weaknesses and its lesson"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() > 0 {
				return misuse(fmt.Sprintf("schemes takes no arguments, got %q", c.Args().First()))
			}
			all := schemes.All()
			if c.Bool("json") {
				enc := json.NewEncoder(c.App.Writer)
				enc.SetIndent("", "  ")
				if err := enc.Encode(all); err != nil {
					return fail(err)
				}
				return nil
			}
			printSchemes(c, all, c.Bool("long"))
			return nil
		},
	}
}

func printSchemes(c *cli.Context, all []schemes.Properties, long bool) {
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SCHEME\tCONFIDENTIAL\tINTEGRITY\tSERVER AUTH\tCLIENT AUTH\tNO REPLAY\tFWD SECRECY\tSUMMARY")
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "-"
	}
	for _, p := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name,
			yes(p.Confidentiality), yes(p.Integrity), yes(p.ServerAuth), yes(p.ClientAuth),
			yes(p.ReplayProtection), yes(p.ForwardSecrecy), p.Summary)
	}
	w.Flush()
	if long {
		for _, p := range all {
			fmt.Fprintf(c.App.Writer, "\n%s\n", p.Name)
			if p.Warning != "" {
				fmt.Fprintf(c.App.Writer, "  warning:    %s\n", p.Warning)
			}
			fmt.Fprintf(c.App.Writer, "  teaches:    %s\n", p.Teaches)
			for _, l := range p.Leaks {
				fmt.Fprintf(c.App.Writer, "  leaks:      %s\n", l)
			}
			for _, l := range p.Weaknesses {
				fmt.Fprintf(c.App.Writer, "  weakness:   %s\n", l)
			}
		}
	}
	var insecure []string
	for _, p := range all {
		if p.Insecure {
			insecure = append(insecure, p.Name)
		}
	}
	if len(insecure) > 0 {
		fmt.Fprintf(c.App.ErrWriter, "parley: %s are INSECURE on purpose, for teaching; 'parley schemes --long' says why\n", strings.Join(insecure, ", "))
	}
}
