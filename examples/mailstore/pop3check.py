#!/usr/bin/env python3
"""pop3check.py — drive pop3d with Python's own POP3 client (poplib, stdlib)
and compare what it retrieves, byte for byte, with what the store's SQLite
database holds (read here with Python's sqlite3 module, not through the
store).

  pop3check.py HOST PORT DB USER:PASS...       check each mailbox: STAT, LIST, UIDL,
                                               every RETR, TOP, DELE+RSET
  pop3check.py --delete HOST PORT DB USER:PASS DELE message 1, QUIT, check it left the database
  pop3check.py --large HOST PORT DB USER:PASS   add a 16 MiB message to the database, check RETR
                                               gives it back byte for byte
  pop3check.py --oversize HOST PORT DB USER:PASS
                                               add a message above the store's largest block
                                               (33 MiB), check RETR of it is refused with an -ERR
                                               that names the limit, and the session goes on

Exits 0 when everything matched; prints one line per mailbox.
"""
import poplib
import sqlite3
import sys
import time

poplib._MAXLINE = 2048  # the default; our lines are at most 78 octets


def fail(msg):
    print("pop3check: FAIL: " + msg)
    sys.exit(1)


def stored(db, user):
    con = sqlite3.connect(db)
    rows = con.execute("SELECT uid, body FROM messages WHERE user=? ORDER BY id", (user,)).fetchall()
    con.close()
    return rows


def login(host, port, user, pw):
    p = poplib.POP3(host, port, timeout=30)
    p.user(user)
    p.pass_(pw)
    return p


def check(host, port, db, user, pw):
    rows = stored(db, user)
    t0 = time.time()
    p = login(host, port, user, pw)
    count, octets = p.stat()
    if count != len(rows) or octets != sum(len(b) for _, b in rows):
        fail(f"{user}: STAT {count} {octets}, database has {len(rows)} {sum(len(b) for _, b in rows)}")
    _, listing, _ = p.list()
    want = [f"{i + 1} {len(b)}".encode() for i, (_, b) in enumerate(rows)]
    if listing != want:
        fail(f"{user}: LIST differs from the database")
    _, uidl, _ = p.uidl()
    if uidl != [f"{i + 1} {u}".encode() for i, (u, _) in enumerate(rows)]:
        fail(f"{user}: UIDL differs from the database")
    total = 0
    for i, (_, body) in enumerate(rows):
        resp, lines, _ = p.retr(i + 1)
        got = b"\r\n".join(lines) + b"\r\n"  # poplib removed the dot-stuffing and the CRLFs
        if got != body:
            fail(f"{user}: RETR {i + 1}: {len(got)} octets differ from the stored {len(body)}")
        total += len(got)
    if rows:
        _, top, _ = p.top(1, 0)
        head = rows[0][1].split(b"\r\n\r\n", 1)[0].split(b"\r\n")
        if top[: len(head)] != head:
            fail(f"{user}: TOP 1 0 is not the header")
        p.dele(1)
        if p.stat()[0] != len(rows) - 1:
            fail(f"{user}: STAT after DELE")
        try:
            p.retr(1)
            fail(f"{user}: RETR of a deleted message answered +OK")
        except poplib.error_proto:
            pass
        p.rset()
    try:
        p.retr(len(rows) + 1)
        fail(f"{user}: RETR past the end answered +OK")
    except poplib.error_proto:
        pass
    p.quit()
    if len(stored(db, user)) != len(rows):
        fail(f"{user}: RSET then QUIT removed messages")
    dt = time.time() - t0
    print(f"pop3check: {user}: {len(rows)} messages, {total} octets retrieved, all equal ({dt:.2f}s)")


def delete(host, port, db, user, pw):
    rows = stored(db, user)
    p = login(host, port, user, pw)
    p.dele(1)
    p.quit()
    after = stored(db, user)
    if after != rows[1:]:
        fail(f"{user}: after DELE 1 and QUIT the database has {len(after)} messages, want {len(rows) - 1}")
    print(f"pop3check: {user}: DELE 1 applied at QUIT")


def big_body(octets, tag):
    head = b"Subject: " + tag + b"\r\n\r\n"
    line = b"y" * 78 + b"\r\n"
    n = (octets - len(head)) // len(line)
    body = head + line * n
    return body + b"z" * (octets - len(body) - 2) + b"\r\n"


def large(host, port, db, user, pw):
    body = big_body(16 << 20, b"large")
    con = sqlite3.connect(db)
    con.execute("INSERT INTO messages(user, uid, body) VALUES(?, ?, ?)", (user, "large16", body))
    con.commit()
    con.close()
    rows = stored(db, user)
    t0 = time.time()
    p = login(host, port, user, pw)
    resp, lines, octets = p.retr(len(rows))
    got = b"\r\n".join(lines) + b"\r\n"
    if got != body:
        fail(f"{user}: RETR of the {len(body)}-octet message gave {len(got)} octets that differ")
    p.quit()
    print(f"pop3check: {user}: RETR of {len(body)} octets matched byte for byte in {time.time() - t0:.2f} s")


def oversize(host, port, db, user, pw):
    body = big_body(33 << 20, b"huge")
    con = sqlite3.connect(db)
    con.execute("INSERT INTO messages(user, uid, body) VALUES(?, ?, ?)", (user, "huge", body))
    con.commit()
    con.close()
    rows = stored(db, user)
    p = login(host, port, user, pw)
    try:
        p.retr(len(rows))
        fail(f"{user}: RETR of a {len(rows[-1][1])}-octet message answered +OK")
    except poplib.error_proto as e:
        text = e.args[0].decode()
        if "limit" not in text or str(len(body)) not in text:
            fail(f"{user}: -ERR for {len(body)} octets does not name the size and the limit: {text}")
        print(f"pop3check: {user}: RETR of {len(rows[-1][1])} octets refused: {text}")
    p.noop()
    resp, lines, _ = p.retr(1)
    if b"\r\n".join(lines) + b"\r\n" != rows[0][1]:
        fail(f"{user}: RETR 1 after the refusal differs")
    p.quit()


def main(argv):
    mode = check
    if argv and argv[0] in ("--delete", "--oversize", "--large"):
        mode = {"--delete": delete, "--oversize": oversize, "--large": large}[argv[0]]
        argv = argv[1:]
    if len(argv) < 4:
        print(__doc__)
        return 2
    host, port, db = argv[0], int(argv[1]), argv[2]
    for up in argv[3:]:
        user, pw = up.split(":", 1)
        mode(host, port, db, user, pw)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
