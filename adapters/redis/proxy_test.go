package redis

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// tcpProxy forwards TCP connections to a Redis server and can black-hole
// one of them: bytes stop flowing both ways while both sockets stay open,
// as on a half-open connection after a NAT or load balancer forgot it.
// Neither side notices; only a probe that must come back can.
type tcpProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex // guards following
	pairs  []*proxyPair
	closed bool
}

type proxyPair struct {
	client, server net.Conn
	frozen         atomic.Bool
	done           chan struct{} // closed when the proxy closes
}

// startProxy listens on 127.0.0.1 and forwards to target until the test
// ends.
func startProxy(tb testing.TB, target string) *tcpProxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &tcpProxy{ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	tb.Cleanup(p.close)
	return p
}

// URL is the redis:// URL of the proxy.
func (p *tcpProxy) URL() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		pair := &proxyPair{client: c, server: s, done: make(chan struct{})}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.pairs = append(p.pairs, pair)
		p.wg.Add(2)
		p.mu.Unlock()
		go p.pipe(pair, s, c)
		go p.pipe(pair, c, s)
	}
}

// pipe copies src to dst until either fails, dropping everything once the
// pair is frozen.
func (p *tcpProxy) pipe(pair *proxyPair, dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if pair.frozen.Load() {
			<-pair.done // hold both sockets open, silent, until the test ends
			return
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// freeze black-holes the connection whose Redis-side local address is
// addr (as Redis's CLIENT LIST shows it). It reports whether one matched.
func (p *tcpProxy) freeze(addr string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pair := range p.pairs {
		if pair.server.LocalAddr().String() == addr {
			pair.frozen.Store(true)
			return true
		}
	}
	return false
}

func (p *tcpProxy) close() {
	_ = p.ln.Close()
	p.mu.Lock()
	p.closed = true
	for _, pair := range p.pairs {
		close(pair.done)
		_ = pair.client.Close()
		_ = pair.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}
