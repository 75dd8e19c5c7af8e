//! The few rtnetlink requests veth egress makes (create a veth pair with one end in an
//! instance's namespace, addresses, routes, link up, delete, list), over a blocking
//! `NETLINK_ROUTE` socket. A socket belongs to the network namespace of the thread that
//! opened it, so one opened inside an instance's namespace configures that namespace.

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL,
    NLM_F_REQUEST,
};
use netlink_packet_route::address::{AddressAttribute, AddressMessage, AddressScope};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

/// A connected rtnetlink socket in the namespace of the thread that opened it.
pub(crate) struct Rtnl {
    socket: Socket,
    seq: u32,
    buf: Vec<u8>,
}

impl Rtnl {
    /// Opens a socket in the calling thread's network namespace.
    pub(crate) fn open() -> io::Result<Rtnl> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Rtnl {
            socket,
            seq: 0,
            buf: vec![0; 64 * 1024],
        })
    }

    /// Creates veth `name` here with its peer, named `peer_name`, in the namespace `peer_ns`.
    /// `ErrorKind::AlreadyExists` when a link of that name exists.
    pub(crate) fn add_veth(
        &mut self,
        name: &str,
        peer_name: &str,
        peer_ns: BorrowedFd<'_>,
    ) -> io::Result<()> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(peer_name.into()));
        peer.attributes
            .push(LinkAttribute::NetNsFd(peer_ns.as_raw_fd()));
        let mut link = LinkMessage::default();
        link.attributes.push(LinkAttribute::IfName(name.into()));
        link.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.request(
            RouteNetlinkMessage::NewLink(link),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// The index of link `name`.
    pub(crate) fn link_index(&mut self, name: &str) -> io::Result<u32> {
        let mut query = LinkMessage::default();
        query.attributes.push(LinkAttribute::IfName(name.into()));
        let replies = self.request(RouteNetlinkMessage::GetLink(query), 0)?;
        replies
            .into_iter()
            .find_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => Some(l.header.index),
                _ => None,
            })
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no link {name}")))
    }

    /// Brings link `index` up.
    pub(crate) fn set_up(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        link.header.flags = LinkFlags::Up;
        link.header.change_mask = LinkFlags::Up;
        self.request(RouteNetlinkMessage::SetLink(link), 0)
            .map(drop)
    }

    /// Adds the point-to-point address `local` with peer `peer` (a /32 each way; the kernel
    /// adds the route to `peer` through the link).
    pub(crate) fn add_peer_address(
        &mut self,
        index: u32,
        local: Ipv4Addr,
        peer: Ipv4Addr,
    ) -> io::Result<()> {
        let mut addr = AddressMessage::default();
        addr.header.family = AddressFamily::Inet;
        addr.header.prefix_len = 32;
        addr.header.scope = AddressScope::Universe;
        addr.header.index = index;
        addr.attributes.push(AddressAttribute::Local(local.into()));
        addr.attributes.push(AddressAttribute::Address(peer.into()));
        self.request(
            RouteNetlinkMessage::NewAddress(addr),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Adds the IPv4 default route via `gateway` on link `index` (main table).
    pub(crate) fn add_default_route(&mut self, index: u32, gateway: Ipv4Addr) -> io::Result<()> {
        let mut route = RouteMessage::default();
        route.header.address_family = AddressFamily::Inet;
        route.header.table = RouteHeader::RT_TABLE_MAIN;
        route.header.protocol = RouteProtocol::Boot;
        route.header.scope = RouteScope::Universe;
        route.header.kind = RouteType::Unicast;
        route
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::Inet(gateway)));
        route.attributes.push(RouteAttribute::Oif(index));
        self.request(
            RouteNetlinkMessage::NewRoute(route),
            NLM_F_CREATE | NLM_F_EXCL,
        )
        .map(drop)
    }

    /// Deletes link `index` (for a veth, both ends).
    pub(crate) fn delete_link(&mut self, index: u32) -> io::Result<()> {
        let mut link = LinkMessage::default();
        link.header.index = index;
        self.request(RouteNetlinkMessage::DelLink(link), 0)
            .map(drop)
    }

    /// Every link here: (index, name).
    pub(crate) fn links(&mut self) -> io::Result<Vec<(u32, String)>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            NLM_F_DUMP,
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(l) => {
                    let name = l.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(n) => Some(n.clone()),
                        _ => None,
                    })?;
                    Some((l.header.index, name))
                }
                _ => None,
            })
            .collect())
    }

    /// Sends one request and collects its answers until the ACK, the end of a dump, or an
    /// error (as an `io::Error` with the kernel's errno).
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        header.sequence_number = self.seq;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut answers = Vec::new();
        loop {
            let n = self.socket.recv(&mut &mut self.buf[..], 0)?;
            let mut offset = 0;
            while offset < n {
                let reply =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.buf[offset..n])
                        .map_err(|e| io::Error::other(format!("bad rtnetlink answer: {e}")))?;
                let len = reply.header.length as usize;
                if len == 0 {
                    break;
                }
                offset += len;
                if reply.header.sequence_number != self.seq {
                    continue;
                }
                match reply.payload {
                    NetlinkPayload::Error(e) => match e.code {
                        None if !dump => return Ok(answers),
                        None => {}
                        Some(code) => return Err(io::Error::from_raw_os_error(-code.get())),
                    },
                    NetlinkPayload::Done(_) => return Ok(answers),
                    NetlinkPayload::InnerMessage(m) => answers.push(m),
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real rtnetlink in a throwaway namespace of a throwaway thread; needs root.
    #[test]
    fn creates_lists_addresses_and_deletes_a_veth_in_its_own_namespace() {
        if !crate::sys::is_root() {
            eprintln!("skipped: needs root");
            return;
        }
        crate::sys::spawn_namespace_thread(std::thread::Builder::new(), |own| {
            crate::sys::unshare_netns(own).unwrap();
            let mut rtnl = Rtnl::open().unwrap();
            let peer_ns = std::fs::File::open("/proc/thread-self/ns/net").unwrap();
            use std::os::fd::AsFd;
            rtnl.add_veth("fcxtest0", "fcxtest1", peer_ns.as_fd())
                .unwrap();
            let again = rtnl.add_veth("fcxtest0", "fcxtest2", peer_ns.as_fd());
            assert_eq!(again.unwrap_err().kind(), io::ErrorKind::AlreadyExists);
            let a = rtnl.link_index("fcxtest0").unwrap();
            let b = rtnl.link_index("fcxtest1").unwrap();
            let names: Vec<String> = rtnl.links().unwrap().into_iter().map(|l| l.1).collect();
            assert!(names.contains(&"fcxtest0".to_string()), "{names:?}");
            rtnl.add_peer_address(a, Ipv4Addr::new(10, 9, 0, 1), Ipv4Addr::new(10, 9, 0, 2))
                .unwrap();
            rtnl.add_peer_address(b, Ipv4Addr::new(10, 9, 0, 2), Ipv4Addr::new(10, 9, 0, 1))
                .unwrap();
            rtnl.set_up(a).unwrap();
            rtnl.set_up(b).unwrap();
            rtnl.add_default_route(b, Ipv4Addr::new(10, 9, 0, 1))
                .unwrap();
            let routes = std::fs::read_to_string("/proc/thread-self/net/route").unwrap();
            assert!(
                routes
                    .lines()
                    .any(|l| l.starts_with("fcxtest1\t00000000\t0100090A")),
                "{routes}"
            );
            rtnl.delete_link(a).unwrap();
            assert_eq!(
                rtnl.link_index("fcxtest1").unwrap_err().raw_os_error(),
                Some(libc::ENODEV)
            );
        })
        .unwrap()
        .join()
        .unwrap();
    }
}
