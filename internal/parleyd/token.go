package parleyd

import (
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/token"
)

// DefaultExpire is how long a token from `parleyd token` is valid.
const DefaultExpire = 24 * time.Hour

// tokenOptions are the flags of token.
type tokenOptions struct {
	appID, appKey, room, user string
	login                     bool
	expire                    time.Duration
}

func tokenFlags(output io.Writer) (*flag.FlagSet, *tokenOptions) {
	o := new(tokenOptions)
	fs := flag.NewFlagSet("token", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.appID, "app-id", DevAppID, "AppID (24 characters)")
	fs.StringVar(&o.appKey, "app-key", DevAppKey, "AppKey to sign with")
	fs.StringVar(&o.room, "room", "", "room `ID`; \"*\" for any room, \"\" for a login token (required)")
	fs.BoolVar(&o.login, "login", false, "mint a login token (room \"\")")
	fs.StringVar(&o.user, "user", "", "user `ID` (required)")
	fs.DurationVar(&o.expire, "expire", DefaultExpire, "validity of the token and its privileges (0: forever)")
	fs.Usage = usageFunc(fs, "parleyd token --room ROOM --user USER [flags]",
		`Prints an access token (Volcengine RTC AccessToken "001") granting USER
publish and subscribe in ROOM. The default AppID and AppKey are the
development server's.`)
	return fs, o
}

func mintToken(args []string, stdout, stderr io.Writer) error {
	fs, o := tokenFlags(stderr)
	set, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case o.login && o.room != "":
		return fmt.Errorf("%w: --login mints a token for room \"\", not %q", ErrUsage, o.room)
	case !o.login && !set["room"]:
		return fmt.Errorf("%w: --room is required (--room \"\" or --login for a login token)", ErrUsage)
	case o.expire < 0:
		return fmt.Errorf("%w: --expire %v is negative", ErrUsage, o.expire)
	case len(o.appID) != 24:
		return fmt.Errorf("%w: --app-id %q is %d characters, want 24", ErrUsage, o.appID, len(o.appID))
	case o.appKey == "":
		return fmt.Errorf("%w: empty --app-key", ErrUsage)
	}
	if err := ids.Check("user ID", o.user); err != nil {
		return fmt.Errorf("%w: --user: %w", ErrUsage, err)
	}
	if o.room != "" && o.room != "*" {
		if err := ids.Check("room ID", o.room); err != nil {
			return fmt.Errorf("%w: --room: %w", ErrUsage, err)
		}
	}

	t := token.New(o.appID, o.appKey, o.room, o.user)
	var expire time.Time // zero: never
	if o.expire > 0 {
		expire = time.Now().Add(o.expire)
	}
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	s, err := t.Serialize()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, s)
	return err
}
