package token_test

import (
	"fmt"
	"log"
	"time"

	"github.com/parleyhq/parley/token"
)

func ExampleNew() {
	const (
		appID  = "123456781234567812345678" // 24 characters, from the console
		appKey = "app key"
	)
	t := token.New(appID, appKey, "room1", "user1")
	t.ExpireTime(time.Now().Add(24 * time.Hour))
	t.AddPrivilege(token.PrivPublishStream, time.Time{}) // also audio, video, data
	t.AddPrivilege(token.PrivSubscribeStream, time.Time{})
	raw, err := t.Serialize()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(raw[:27])

	// A login token, for messaging outside rooms, has an empty room ID.
	login := token.New(appID, appKey, "", "user1")
	login.ExpireTime(time.Now().Add(7 * 24 * time.Hour))
	if _, err := login.Serialize(); err != nil {
		log.Fatal(err)
	}

	parsed, err := token.Parse(raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(parsed.Verify(appKey), len(parsed.Privileges))
	// Output:
	// 001123456781234567812345678
	// true 5
}

func ExampleParse() {
	const raw = "001123456781234567812345678OgBOYbwAAPFTZSANVGUFAHJvb20xBQB1c2VyMQUAAAAgDVRlAQAgDVRlAgAgDVRlAwAgDVRlBAAgDVRlIAA3CG5vxAoMgyG1QwLoEu3B9vbHxDouhXCEvqznnzlEvg=="
	t, err := token.Parse(raw)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.AppID, t.RoomID, t.UserID, t.ExpireAt)

	before := time.Unix(1700000000, 0)
	after := time.Unix(1700007201, 0)
	fmt.Println(t.VerifyAt("app key", before), t.VerifyAt("wrong", before))
	// When verification fails, Expired tells an expired token from a bad one.
	fmt.Println(t.VerifyAt("app key", after), t.Expired(after))

	_, err = token.Parse(raw[:40])
	fmt.Println(err)
	// Output:
	// 123456781234567812345678 room1 user1 1700007200
	// true false
	// false true
	// token: malformed: base64: illegal base64 data at input byte 12
}
