package transport_test

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/internal/transport"
)

// TestReadLoopGrowsAndShrinks: over a real pion pair, the reliable
// channel's read loop, whose buffer starts at a few KiB, delivers every
// message intact and in order: small ones, one of 200 KiB (the buffer
// grows for it), 100 small ones (it shrinks back), then the largest SCTP
// message and a small one.
func TestReadLoopGrowsAndShrinks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	api := transport.NewAPI(transport.Options{LoopbackOnly: true})
	var pcs [2]*webrtc.PeerConnection
	var opens [2]chan transport.Channels
	for i := range pcs {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		require.NoError(t, err)
		t.Cleanup(func() { _ = pc.Close() })
		pcs[i] = pc
		dcs, err := transport.CreateChannels(pc)
		require.NoError(t, err)
		opens[i] = make(chan transport.Channels, 1)
		transport.OnOpen(dcs, func(ch transport.Channels) { opens[i] <- ch }, func(err error) { t.Error(err) })
	}
	offer, err := pcs[0].CreateOffer(nil)
	require.NoError(t, err)
	require.NoError(t, pcs[0].SetLocalDescription(offer))
	require.NoError(t, transport.WaitGathered(ctx, pcs[0]))
	require.NoError(t, pcs[1].SetRemoteDescription(*pcs[0].LocalDescription()))
	answer, err := pcs[1].CreateAnswer(nil)
	require.NoError(t, err)
	require.NoError(t, pcs[1].SetLocalDescription(answer))
	require.NoError(t, transport.WaitGathered(ctx, pcs[1]))
	require.NoError(t, pcs[0].SetRemoteDescription(*pcs[1].LocalDescription()))
	var chans [2]transport.Channels
	for i := range chans {
		select {
		case chans[i] = <-opens[i]:
		case <-ctx.Done():
			t.Fatal("channels did not open")
		}
	}

	var msgs [][]byte
	add := func(size int) {
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(len(msgs) + i)
		}
		msgs = append(msgs, b)
	}
	for range 3 {
		add(100)
	}
	add(200 << 10)
	for range 100 {
		add(1000)
	}
	add(transport.MaxSCTPMessage)
	add(10)

	got := make(chan []byte, len(msgs))
	done := make(chan error, 1)
	go func() {
		done <- transport.ReadLoopRoom(chans[1][transport.ChannelReliable], 16, 133, func(buf []byte, off, end int) {
			if off < 16 || len(buf)-end < 133 {
				got <- nil // no room around it
				return
			}
			got <- bytes.Clone(buf[off:end])
		})
	}()
	for _, m := range msgs {
		_, err := chans[0][transport.ChannelReliable].Write(m)
		require.NoError(t, err)
	}
	for i, want := range msgs {
		select {
		case b := <-got:
			require.True(t, bytes.Equal(want, b), "message %d (%d bytes) arrived as %d bytes, or changed", i, len(want), len(b))
		case err := <-done:
			t.Fatalf("read loop ended after %d messages: %v", i, err)
		case <-ctx.Done():
			t.Fatalf("message %d did not arrive", i)
		}
	}
	for _, pc := range pcs {
		require.NoError(t, pc.Close())
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("read loop did not end with its PeerConnection")
	}
}
