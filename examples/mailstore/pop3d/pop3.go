package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/exipc/exipc"
	"github.com/exipc/exipc/stub"
)

// maxLine is RFC 1939's limit on a line (responses; commands are shorter).
const maxLine = 512

// config is what a POP3 session needs from the server.
type config struct {
	store       Transport
	callTimeout time.Duration // per store call
	idle        time.Duration // RFC 1939: an autologout timer of at least 10 minutes
	maxMessage  int           // larger messages are refused with -ERR
}

type state int

const (
	authorization state = iota
	transaction
)

// session is one POP3 connection (RFC 1939). Each command in the
// TRANSACTION state is one call to the store.
type session struct {
	cfg   *config
	conn  net.Conn
	r     *bufio.Reader
	w     *bufio.Writer
	state state
	user  string
	sid   uint64 // the store's session, once authenticated
}

func serveConn(cfg *config, conn net.Conn) {
	s := &session{cfg: cfg, conn: conn, r: bufio.NewReaderSize(conn, 1024), w: bufio.NewWriterSize(conn, 64<<10)}
	defer conn.Close()
	defer s.logout()
	s.reply("+OK exipc POP3 server ready")
	for {
		if s.w.Flush() != nil {
			return
		}
		conn.SetReadDeadline(time.Now().Add(cfg.idle))
		line, err := s.readLine()
		if errors.Is(err, errLineTooLong) {
			s.reply("-ERR line too long (512 octets at most)")
			continue
		}
		if err != nil {
			return
		}
		if !s.command(line) {
			s.w.Flush()
			return
		}
	}
}

var errLineTooLong = errors.New("line too long")

// readLine reads one command line (without CRLF), at most maxLine octets; a
// longer line is consumed and reported as errLineTooLong.
func (s *session) readLine() (string, error) {
	var line []byte
	for {
		frag, err := s.r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine+2 {
			line = line[:maxLine+3] // remember only that it is too long
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			return "", err
		}
		if len(line) > maxLine+2 { // 512 octets, not counting CRLF
			return "", errLineTooLong
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
}

func (s *session) reply(format string, args ...any) {
	fmt.Fprintf(s.w, format, args...)
	s.w.WriteString("\r\n")
}

// command runs one command; false ends the connection.
func (s *session) command(line string) bool {
	for _, c := range line {
		if c < 0x20 && c != '\t' || c == 0x7f {
			s.reply("-ERR malformed command")
			return true
		}
	}
	fields := strings.Fields(line)
	if len(fields) == 0 {
		s.reply("-ERR empty command")
		return true
	}
	cmd, args := strings.ToUpper(fields[0]), fields[1:]
	if len(cmd) > 4 || len(args) > 2 {
		s.reply("-ERR malformed command")
		return true
	}
	if cmd == "QUIT" {
		return s.quit()
	}
	if cmd == "CAPA" {
		s.reply("+OK capability list follows\r\nUSER\r\nUIDL\r\nTOP\r\nIMPLEMENTATION exipc-pop3d\r\n.")
		return true
	}
	if s.state == authorization {
		s.authCommand(cmd, args)
		return true
	}
	s.transCommand(cmd, args)
	return true
}

func (s *session) authCommand(cmd string, args []string) {
	switch cmd {
	case "USER":
		if len(args) != 1 {
			s.reply("-ERR usage: USER name")
			return
		}
		s.user = args[0]
		s.reply("+OK send PASS")
	case "PASS":
		if s.user == "" {
			s.reply("-ERR USER first")
			return
		}
		if len(args) != 1 {
			s.reply("-ERR usage: PASS secret")
			return
		}
		body := append(append([]byte(s.user), 0), args[0]...)
		r, err := s.call(opAuth, body)
		if err != nil {
			s.user = ""
			s.replyErr(err)
			return
		}
		defer r.Release()
		if len(r.Body) < 20 {
			s.reply("-ERR [SYS/PERM] bad reply from the store")
			return
		}
		s.sid = binary.LittleEndian.Uint64(r.Body)
		s.state = transaction
		s.reply("+OK maildrop has %d messages (%d octets)", binary.LittleEndian.Uint32(r.Body[8:]),
			binary.LittleEndian.Uint64(r.Body[12:]))
	case "APOP":
		s.reply("-ERR APOP not supported")
	default:
		s.reply("-ERR unknown command in AUTHORIZATION state")
	}
}

// msgNumber parses a message number argument.
func msgNumber(a string) (uint32, bool) {
	n, err := strconv.ParseUint(a, 10, 31)
	return uint32(n), err == nil && n > 0
}

func (s *session) transCommand(cmd string, args []string) {
	var n, lines uint32
	switch cmd {
	case "STAT", "RSET", "NOOP":
		if len(args) != 0 {
			s.reply("-ERR no argument expected")
			return
		}
	case "LIST", "UIDL":
		if len(args) > 1 {
			s.reply("-ERR usage: %s [msg]", cmd)
			return
		}
		if len(args) == 1 {
			var ok bool
			if n, ok = msgNumber(args[0]); !ok {
				s.reply("-ERR invalid message number")
				return
			}
		}
	case "RETR", "DELE":
		var ok bool
		if len(args) != 1 {
			s.reply("-ERR usage: %s msg", cmd)
			return
		}
		if n, ok = msgNumber(args[0]); !ok {
			s.reply("-ERR invalid message number")
			return
		}
	case "TOP":
		if len(args) != 2 {
			s.reply("-ERR usage: TOP msg lines")
			return
		}
		var ok bool
		if n, ok = msgNumber(args[0]); !ok {
			s.reply("-ERR invalid message number")
			return
		}
		l, err := strconv.ParseUint(args[1], 10, 32)
		if err != nil {
			s.reply("-ERR invalid line count")
			return
		}
		lines = uint32(l)
	default:
		s.reply("-ERR unknown command")
		return
	}
	ops := map[string]uint32{"STAT": opStat, "LIST": opList, "UIDL": opUidl, "RETR": opRetr, "TOP": opTop,
		"DELE": opDele, "RSET": opRset, "NOOP": opNoop}
	r, err := s.call(ops[cmd], s.req(n, lines))
	if err != nil {
		s.replyErr(err)
		return
	}
	defer r.Release()
	switch cmd {
	case "STAT":
		if len(r.Body) < 12 {
			s.reply("-ERR [SYS/PERM] bad reply from the store")
			return
		}
		s.reply("+OK %d %d", binary.LittleEndian.Uint32(r.Body), binary.LittleEndian.Uint64(r.Body[4:]))
	case "RSET":
		if len(r.Body) < 12 {
			s.reply("-ERR [SYS/PERM] bad reply from the store")
			return
		}
		s.reply("+OK maildrop has %d messages (%d octets)", binary.LittleEndian.Uint32(r.Body),
			binary.LittleEndian.Uint64(r.Body[4:]))
	case "NOOP":
		s.reply("+OK")
	case "DELE":
		s.reply("+OK message %d deleted", n)
	case "LIST", "UIDL":
		if n != 0 {
			s.reply("+OK %s", r.Body)
			return
		}
		s.reply("+OK listing follows")
		s.w.Write(r.Body)
		s.reply(".")
	case "RETR", "TOP":
		if len(r.Body) > s.cfg.maxMessage {
			s.reply("-ERR message of %d octets is above the limit of %d octets (the largest block)", len(r.Body), s.cfg.maxMessage)
			return
		}
		if cmd == "RETR" {
			s.reply("+OK %d octets", len(r.Body))
		} else {
			s.reply("+OK top of message follows")
		}
		writeDotStuffed(s.w, r.Body)
		s.reply(".")
	}
}

// writeDotStuffed writes a message as a multi-line response body (RFC 1939
// 3): a line that starts with '.' gets one more; the body ends with CRLF.
// It writes straight from msg, which for exipc is the reply block in the
// shared heap, in runs that end only where a line starts with '.': most
// messages are one Write, which bufio passes to the socket without copying
// once it exceeds the buffer.
func writeDotStuffed(w io.Writer, msg []byte) {
	if len(msg) == 0 {
		return
	}
	if msg[0] == '.' {
		w.Write([]byte{'.'})
	}
	for {
		i := bytes.Index(msg, []byte("\n."))
		if i < 0 {
			break
		}
		w.Write(msg[:i+1]) // up to and including the '\n'; the '.' starts the next run
		w.Write([]byte{'.'})
		msg = msg[i+1:]
	}
	w.Write(msg)
	if msg[len(msg)-1] != '\n' {
		w.Write([]byte("\r\n"))
	}
}

func (s *session) quit() bool {
	if s.state == authorization {
		s.reply("+OK bye")
		return false
	}
	// UPDATE state: the store removes the messages marked deleted.
	r, err := s.call(opQuit, s.req(0, 0))
	s.state, s.sid = authorization, 0
	if err != nil {
		var se *stub.Error
		if errors.As(err, &se) && se.Status != errNoSession {
			s.reply("-ERR some deleted messages not removed: %s", se.Msg)
		} else {
			s.reply("-ERR [SYS/TEMP] deleted messages not removed: %s", storeMessage(err))
		}
		return false
	}
	defer r.Release()
	deleted := uint32(0)
	if len(r.Body) >= 4 {
		deleted = binary.LittleEndian.Uint32(r.Body)
	}
	s.reply("+OK bye (%d messages deleted)", deleted)
	return false
}

// logout ends the store's session of a connection that went without QUIT:
// nothing is deleted (RFC 1939 6).
func (s *session) logout() {
	if s.state != transaction {
		return
	}
	if r, err := s.call(opLogout, s.req(0, 0)); err == nil {
		r.Release()
	}
}

func (s *session) req(a1, a2 uint32) []byte {
	b := binary.LittleEndian.AppendUint64(nil, s.sid)
	b = binary.LittleEndian.AppendUint32(b, a1)
	return binary.LittleEndian.AppendUint32(b, a2)
}

func (s *session) call(op uint32, body []byte) (*Reply, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.callTimeout)
	defer cancel()
	return s.cfg.store.Call(ctx, op, body)
}

// replyErr answers a failed store call with -ERR and a reason. Temporary
// conditions say so (RFC 3206 response codes) so the client retries.
func (s *session) replyErr(err error) {
	var se *stub.Error
	if errors.As(err, &se) {
		switch se.Status {
		case errAuth:
			s.reply("-ERR [AUTH] %s", se.Msg)
		case errLocked:
			s.reply("-ERR [IN-USE] %s", se.Msg)
		case errNoSession:
			s.reply("-ERR [SYS/TEMP] session lost (the store restarted): reconnect")
		case errTooBig:
			s.reply("-ERR %s", se.Msg)
		default:
			s.reply("-ERR %s", se.Msg)
		}
		return
	}
	s.reply("-ERR [SYS/TEMP] %s", storeMessage(err))
}

func storeMessage(err error) string {
	switch {
	case errors.Is(err, exipc.ErrQueueFull):
		return "store busy (queue full), try again in a moment"
	case errors.Is(err, exipc.ErrHeapFull):
		return "store busy (no shared memory free), try again in a moment"
	case errors.Is(err, errStoreDown):
		return "store unavailable, try again later"
	case errors.Is(err, context.DeadlineExceeded):
		return "store did not answer in time, try again later"
	}
	return "store error, try again later"
}
